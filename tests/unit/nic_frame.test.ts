// The NIC examples' test frames (examples/nic/frame.ts): valid IPv4/UDP checksums, and a checker that tells good,
// lost, duplicate, reordered, damaged and foreign frames apart. Plain memory only.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FrameWriter, SequenceChecker } from "../../examples/nic/frame.ts";

const src = Uint8Array.from([0x52, 0x54, 0, 0xab, 0, 5]);
const dst = Uint8Array.from([0x52, 0x54, 0, 0xab, 0, 6]);

/** Ones' complement sum of 16-bit big-endian words, folded. */
function csum(b: Uint8Array, from: number, to: number, start = 0): number {
  let s = start;
  for (let i = from; i < to; i += 2) s += (b[i] << 8) | (i + 1 < to ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function frame(size: number, seq: number): Uint8Array {
  const f = new Uint8Array(size);
  new FrameWriter({ size, src, dst }).write(f, seq);
  return f;
}

describe("FrameWriter", () => {
  for (const size of [60, 61, 128, 1000, 1514]) {
    for (const seq of [0, 1, 255, 256, 0x12345678, 0xffffffff]) {
      it(`size ${size}, seq 0x${seq.toString(16)}: IPv4 and UDP checksums verify`, () => {
        const f = frame(size, seq);
        assert.deepEqual([...f.subarray(0, 6)], [...dst]);
        assert.deepEqual([...f.subarray(6, 12)], [...src]);
        assert.equal(csum(f, 14, 34), 0xffff, "IPv4 header checksum");
        assert.equal((f[16] << 8) | f[17], size - 14, "IPv4 total length");
        const udpLen = size - 34;
        assert.equal((f[38] << 8) | f[39], udpLen);
        const pseudo = csum(f, 26, 34) + 17 + udpLen; // addresses, protocol, UDP length
        assert.equal(csum(f, 34, size, pseudo), 0xffff, "UDP checksum over the pseudo-header");
        assert.equal(((f[42] << 24) | (f[43] << 16) | (f[44] << 8) | f[45]) >>> 0, seq);
      });
    }
  }

  it("rejects sizes outside 60..1514", () => {
    assert.throws(() => new FrameWriter({ size: 59, src, dst }), /frame size 59 is out of range/);
    assert.throws(() => new FrameWriter({ size: 1515, src, dst }), /out of range/);
  });
});

describe("SequenceChecker", () => {
  it("accepts 0, 1, 2 … and counts them good", () => {
    const c = new SequenceChecker(100);
    for (let s = 0; s < 300; s++) assert.equal(c.check(frame(100, s), 100), true);
    assert.deepEqual([c.good, c.lost, c.late, c.corrupt, c.foreign, c.firstError], [300, 0, 0, 0, 0, null]);
  });

  it("counts a gap as lost, a repeat as late, and names the first problem", () => {
    const c = new SequenceChecker(60);
    c.check(frame(60, 0), 60);
    assert.equal(c.check(frame(60, 3), 60), false);
    assert.equal(c.check(frame(60, 3), 60), false);
    assert.deepEqual([c.good, c.lost, c.late, c.expected], [2, 2, 1, 4]);
    assert.equal(c.firstError, "frames 1..2 missing when 3 arrived");
  });

  it("counts the frames that never arrived after the last one as lost once finished", () => {
    const c = new SequenceChecker(60);
    for (let s = 0; s < 7; s++) c.check(frame(60, s), 60);
    assert.deepEqual([c.good, c.lost, c.seen], [7, 0, 7], "before finish: nothing is missing yet");
    c.finish(10);
    assert.deepEqual([c.good, c.lost, c.seen, c.expected], [7, 3, 10, 10]);
    assert.equal(c.firstError, "frames 7..9 never arrived");
    c.finish(10); // idempotent
    assert.equal(c.lost, 3);
    const none = new SequenceChecker(60);
    none.finish(500); // pktgen's "0 lost" for 500 frames that never came
    assert.deepEqual([none.good, none.lost], [0, 500]);
  });

  it("finds a flipped payload byte, a wrong length and a bad checksum; ignores foreign frames", () => {
    const c = new SequenceChecker(200);
    const f = frame(200, 0);
    f[150] ^= 1;
    assert.equal(c.check(f, 200), false);
    assert.match(c.firstError!, /frame 0: payload byte 108 differs/);
    assert.equal(c.check(frame(200, 0), 199), false);
    const g = frame(200, 0);
    g[40] ^= 0x80;
    assert.equal(c.check(g, 200), false);
    const arp = new Uint8Array(60);
    arp[12] = 0x08;
    arp[13] = 0x06;
    assert.equal(c.check(arp, 60), false);
    assert.deepEqual([c.corrupt, c.foreign, c.good], [3, 1, 0]);
    assert.equal(c.check(frame(200, 0), 200), true);
  });
});
