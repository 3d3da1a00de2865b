/**
 * The far side of the spin ping-pong in `bench/irq_latency.ts`: busy-reads eventfd `ping`, answers on `pong`.
 *
 * @module
 */
import { libc } from "../ffi/libc.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<{ ping: number; pong: number; rounds: number }>) => void) | null;
  postMessage(m: unknown): void;
};
self.onmessage = (e): void => {
  const { ping, pong, rounds } = e.data;
  const buf = new BigUint64Array(1);
  const one = new BigUint64Array([1n]);
  self.postMessage("ready");
  for (let i = 0; i < rounds; i++) {
    while (libc.read(ping, buf) < 0) { /* spin */ }
    libc.write(pong, one);
  }
  self.postMessage("done");
};
// Messages sent before this module finished loading (libc.ts awaits at top level) can be lost: say when ready.
self.postMessage("loaded");
