/**
 * A `Worker` for `irq.test.ts`: after `delayMs`, adds 1 to the eventfd `fd` of the process (what an interrupt does),
 * while the test's own thread is blocked in `waitSync()`; then says "done".
 *
 * @module
 */
import { libc } from "../../ffi/libc.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<{ fd: number; delayMs: number }>) => void) | null;
  postMessage(m: unknown): void;
};
self.onmessage = (e): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, e.data.delayMs);
  libc.write(e.data.fd, new BigUint64Array([1n]));
  self.postMessage("done");
};
self.postMessage("ready");
