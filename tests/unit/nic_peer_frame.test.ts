// The peer harness's test frames (tests/integration/nic_peer.ts), on the host: CRC-32 as zlib computes it (the
// kernel side is python's zlib.crc32), and a frame written by the driver side checks out, while a damaged or
// foreign one does not.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkFrame, crc32, writeFrame } from "../integration/nic_peer.ts";

describe("NIC peer test frames", () => {
  it("CRC-32 matches zlib's check value", () => {
    const b = new TextEncoder().encode("123456789");
    assert.equal(crc32(b, 0, b.length), 0xcbf43926);
  });

  it("a written frame checks out; a flipped byte, a wrong length or another EtherType do not", () => {
    const f = new Uint8Array(1514);
    const dst = Uint8Array.of(2, 0, 0, 0, 0, 1), src = Uint8Array.of(2, 0, 0, 0, 0, 2);
    for (const size of [60, 61, 1000, 1514]) {
      writeFrame(f, 42, size, dst, src);
      assert.equal(checkFrame(f, size), 42);
      assert.equal(checkFrame(f, size - 1), -1);
      f[size - 1] ^= 1;
      assert.equal(checkFrame(f, size), -1);
    }
    f[12] = 0x86;
    assert.equal(checkFrame(f, 1514), -2);
  });
});
