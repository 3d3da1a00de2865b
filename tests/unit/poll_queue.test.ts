/**
 * `Poller.queue` (a NIC queue pair whose per-descriptor RX refill and TX post run in the C helper, or in
 * TypeScript without it): on a memfd mapping standing in for DMA memory, with the test playing the device, both
 * implementations re-arm RX slots from the free stack (64-bit bus addresses + headroom, carry included), queue TX
 * descriptors with the lengths RX stored, clean TX in groups, free what does not fit, and refuse bad layouts and a
 * corrupted state block with typed errors, and hand buffers to a program and take them back (alloc, release). Functional only: speed is measured by `bench/` (P2).
 *
 * Run: `node_modules/deno/deno test -A tests/unit/poll_queue.test.ts` or `bun test tests/unit/poll_queue.test.ts`.
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { POLL_HELPER_REFUSED, requirePollHelper } from "../../ffi/poll_helper.ts";
import { ClosedError, OutOfRangeError } from "../../lib/errors.ts";
import { Poller, type QueueLayout, queueStateBytes } from "../../lib/poll.ts";
import type { Region } from "../../lib/region.ts";
import { memfdRegion } from "./memfd_region.ts";

const SIZE = 0x8000;
const LAYOUT: QueueLayout = {
  rxRing: 0x1000,
  txRing: 0x1100,
  ringSize: 8,
  buffers: 0x2000,
  bufferSize: 256,
  bufferCount: 16,
  headroom: 64,
  state: 0x4000,
  txCmd: 0x2b300000,
  txLengthShift: 14,
  txCleanBatch: 2,
  rxStatusOffset: 12,
  rxLengthOffset: 8,
  rxDone: 1,
  rxEop: 2,
};

/** A memfd mapped through `Region` (the kernel's mmap path) with every buffer header's bus address written. */
function memory(): { bar: Region; u32: Uint32Array; [Symbol.dispose](): void } {
  const m = memfdRegion(SIZE);
  const bar = m.region, u32 = new Uint32Array(bar.unsafeArrayBuffer);
  // Every header's bus address: 0x1_0000_0000 + its offset, except buffer 8's (the first popped), whose low word carries at + 64.
  for (let i = 0; i < LAYOUT.bufferCount; i++) {
    const h = (LAYOUT.buffers + i * LAYOUT.bufferSize) >> 2;
    u32[h] = i === 8 ? 0xffffffe0 : LAYOUT.buffers + i * LAYOUT.bufferSize;
    u32[h + 1] = 1;
  }
  return {
    bar,
    u32,
    [Symbol.dispose]: () => m[Symbol.dispose](),
  };
}

const desc = (
  u32: Uint32Array,
  ring: number,
  i: number,
): number[] => [...u32.subarray((ring + i * 16) >> 2).slice(0, 4)];
const hdr = (i: number): number => (LAYOUT.buffers + i * LAYOUT.bufferSize) >> 2;
/** The device receives a frame of `len` bytes into RX slot i (EOP unless told). */
const received = (u32: Uint32Array, i: number, len: number, eop = true): void => {
  const d = (LAYOUT.rxRing + i * 16) >> 2;
  u32[d + 2] = len;
  u32[d + 3] = eop ? 3 : 1;
};

for (const native of [true, false]) {
  describe(`Poller.queue, ${native ? "C helper" : "pure TypeScript"}`, () => {
    it("receives, re-arms from the free stack, transmits, cleans in groups and frees what does not fit", () => {
      using m = memory();
      const u32 = m.u32;
      const q = new Poller(m.bar, { native }).queue(LAYOUT);
      assert.ok(Object.isFrozen(q.layout));
      assert.deepEqual(desc(u32, LAYOUT.rxRing, 3), [LAYOUT.buffers + 3 * 256 + 64, 1, 0, 0], "RX armed from headers");
      assert.equal(q.free, 8);
      assert.equal(q.receive(32), 0, "nothing received yet");
      for (const [i, len] of [[0, 60], [1, 61], [2, 62]]) received(u32, i, len);
      assert.equal(q.receive(32), 3);
      assert.deepEqual([...q.frames.subarray(0, 3)], [0, 1, 2]);
      assert.deepEqual([u32[hdr(0) + 3], u32[hdr(1) + 3], u32[hdr(2) + 3]], [60, 61, 62], "lengths into headers");
      assert.deepEqual(desc(u32, LAYOUT.rxRing, 0), [0x20, 2, 0, 0], "slot 0 re-armed with buffer 8 (carry)");
      assert.deepEqual(desc(u32, LAYOUT.rxRing, 1), [LAYOUT.buffers + 9 * 256 + 64, 1, 0, 0]);
      assert.equal(q.rxTail, 2);
      assert.equal(q.free, 5);
      assert.equal(q.transmit(0, 3), 3);
      assert.deepEqual(desc(u32, LAYOUT.txRing, 1), [LAYOUT.buffers + 256 + 64, 1, (0x2b300000 | 61) >>> 0, 61 << 14]);
      assert.equal(q.txTail, 3);
      for (let i = 3; i < 8; i++) received(u32, i, 100);
      received(u32, 0, 100);
      assert.equal(q.receive(8), 5, "stops when the free stack is empty");
      assert.equal(q.rxTail, 7);
      assert.equal(q.free, 0);
      assert.equal(q.transmit(0, 5), 4, "nothing cleaned yet: the ring takes 4 more (one slot stays empty)");
      assert.equal(q.txTail, 7);
      assert.equal(q.free, 1, "the frame that did not fit");
      u32[((LAYOUT.txRing + 16) >> 2) + 3] = 1; // the device sent slots 0 and 1: one group, one done bit read
      assert.equal(q.transmit(0, 0), 0);
      assert.equal(q.free, 3, "slots 0 and 1 cleaned");
      assert.equal(q.receive(8), 1, "slot 0 wraps");
      assert.equal(q.rxTail, 0);
      received(u32, 1, 50, false);
      assert.throws(() => q.receive(4), OutOfRangeError, "a frame without end-of-packet");
      m.bar.close();
      assert.throws(() => q.receive(1), ClosedError);
      assert.throws(() => q.transmit(0, 1), ClosedError);
    });

    it("alloc and release take buffers off the free stack and put them back, refusing what does not fit", () => {
      using m = memory();
      const q = new Poller(m.bar, { native }).queue(LAYOUT);
      assert.equal(q.alloc(), 8, "the top of the stack");
      assert.equal(q.free, 7);
      q.release(8);
      assert.equal(q.free, 8);
      const taken: number[] = [];
      for (let b = q.alloc(); b >= 0; b = q.alloc()) taken.push(b);
      assert.deepEqual(taken, [8, 9, 10, 11, 12, 13, 14, 15]);
      assert.equal(q.alloc(), -1, "empty");
      for (const bad of [16, -1, 1.5, NaN]) assert.throws(() => q.release(bad), OutOfRangeError);
      for (let b = 0; b < LAYOUT.bufferCount; b++) q.release(b);
      assert.equal(q.free, LAYOUT.bufferCount);
      assert.throws(() => q.release(0), OutOfRangeError, "a full stack");
      m.bar.close();
      assert.throws(() => q.alloc(), ClosedError);
      assert.throws(() => q.release(0), ClosedError);
    });

    it("refuses bad layouts and arguments with typed errors", () => {
      using m = memory();
      const p = new Poller(m.bar, { native });
      const bad: Partial<QueueLayout>[] = [
        { ringSize: 1 },
        { bufferCount: 8 },
        { rxRing: 0x1008 },
        { headroom: 8 },
        { headroom: 256 },
        { state: SIZE - queueStateBytes(8, 16) + 4 },
        { buffers: SIZE - 0x800 },
        { txRing: 0x1040 }, // overlaps the RX ring
        { state: 0x2100 }, // inside the buffers
        { rxStatusOffset: 16 },
        { txCleanBatch: 0 },
        { rxDone: 0 },
        { bufferSize: -256 },
        { txCmd: NaN },
      ];
      for (const change of bad) assert.throws(() => p.queue({ ...LAYOUT, ...change }), OutOfRangeError);
      const q = p.queue(LAYOUT);
      for (const budget of [-1, 1.5, NaN]) assert.throws(() => q.receive(budget), OutOfRangeError);
      for (const [first, n] of [[0, 9], [8, 1], [-1, 1], [0, 1.5]]) {
        assert.throws(() => q.transmit(first, n), OutOfRangeError);
      }
    });
  });
}

it("the C helper refuses a corrupted state block without touching memory", () => {
  const c = requirePollHelper();
  using m = memory();
  const q = new Poller(m.bar).queue(LAYOUT);
  const base = c.base(m.bar.unsafeAddress);
  const state = m.u32.subarray(LAYOUT.state >> 2);
  received(m.u32, 0, 60);
  for (const [word, value] of [[2, 0x10000], [5, 0x100000], [0, SIZE], [14, 8], [17, 17], [6, 4]]) {
    const old = state[word];
    state[word] = value;
    const before = m.u32.slice();
    assert.equal(c.rxRefill(base, SIZE, LAYOUT.state, 8), POLL_HELPER_REFUSED, `word ${word} = ${value}`);
    assert.equal(c.txPost(base, SIZE, LAYOUT.state, 0, 1), POLL_HELPER_REFUSED, `word ${word} = ${value}`);
    assert.deepEqual(m.u32, before, "nothing written");
    if (word === 2) assert.throws(() => q.receive(1), OutOfRangeError);
    state[word] = old;
  }
  assert.equal(c.rxRefill(base, SIZE, SIZE - 8, 8), POLL_HELPER_REFUSED, "block past the end");
  assert.equal(c.txPost(base, SIZE, LAYOUT.state, 4, 5), POLL_HELPER_REFUSED, "frames past the list");
  assert.equal(q.receive(8), 1, "intact again");
});
