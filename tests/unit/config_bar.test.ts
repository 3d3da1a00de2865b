// BAR decoding (`ConfigSpace.bar`) on config bytes, without a device: a 64-bit memory BAR whose upper half is
// non-zero (as firmware places large BARs, and every BAR once RAM reaches past 4 GiB), a 32-bit one, an I/O one,
// and the upper-half register itself. `bar()` reads only through `read32`, so it runs on a byte array here.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigSpace } from "../../lib/config.ts";
import { OutOfRangeError } from "../../lib/errors.ts";

/** A config space of 256 bytes with the given BAR registers (offset 0x10 + 4 * i). */
function configWithBars(bars: number[]): ConfigSpace {
  const bytes = new Uint8Array(256);
  const view = new DataView(bytes.buffer);
  bars.forEach((v, i) => view.setUint32(0x10 + 4 * i, v >>> 0, true));
  const reader = {
    size: 256,
    read8: (o: number): number => bytes[o],
    read16: (o: number): number => view.getUint16(o, true),
    read32: (o: number): number => view.getUint32(o, true),
  };
  // bar() is a plain method over read32 (and bar itself): borrow it for the fake reader.
  const bar = ConfigSpace.prototype.bar;
  return {
    ...reader,
    bar(i: number): ReturnType<ConfigSpace["bar"]> {
      return bar.call(this as unknown as ConfigSpace, i);
    },
  } as unknown as ConfigSpace;
}

describe("ConfigSpace.bar on config bytes", () => {
  it("decodes a 64-bit memory BAR with both halves, and its upper register as such", () => {
    // BAR0: 0x0000_0080_fe00_0000, 64-bit (type 10b), prefetchable; BAR1: its upper half 0x80.
    const cfg = configWithBars([0xfe00000c, 0x00000080, 0xfebf1000, 0x0000c001]);
    const b0 = cfg.bar(0);
    assert.equal(b0.kind, "memory");
    assert.equal(b0.is64, true);
    assert.equal(b0.prefetchable, true);
    assert.equal(b0.address, 0x80_fe00_0000n, `upper half lost: 0x${b0.address.toString(16)}`);
    const b1 = cfg.bar(1);
    assert.equal(b1.kind, "upper");
    assert.equal(b1.raw, 0x80);
    assert.equal(b1.address, 0n);
  });

  it("keeps the upper dword for an address with only upper bits (exactly 4 GiB) and the highest one", () => {
    assert.equal(configWithBars([0x00000004, 0x00000001]).bar(0).address, 0x1_0000_0000n);
    assert.equal(configWithBars([0xfffff004, 0xffffffff]).bar(0).address, 0xffff_ffff_ffff_f000n);
  });

  it("decodes 32-bit memory and I/O BARs after the pair, and refuses BAR 6", () => {
    const cfg = configWithBars([0xfe00000c, 0x00000080, 0xfebf1000, 0x0000c001]);
    assert.deepEqual([cfg.bar(2).kind, cfg.bar(2).is64, cfg.bar(2).address], ["memory", false, 0xfebf1000n]);
    assert.deepEqual([cfg.bar(3).kind, cfg.bar(3).address], ["io", 0xc000n]);
    assert.throws(() => cfg.bar(6), OutOfRangeError);
  });

  it("a 64-bit BAR in the last register has no upper half to read", () => {
    const cfg = configWithBars([0, 0, 0, 0, 0, 0xfe000004]);
    assert.deepEqual([cfg.bar(5).is64, cfg.bar(5).address], [false, 0xfe000000n]);
  });
});
