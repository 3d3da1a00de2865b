/**
 * Host unit tests of the PCI capability walk and the typed capability views, over synthetic config bytes:
 * a well-formed device, loops, bad pointers, truncated lists, placeholders, and the field decoders.
 * The guest check against real (QEMU) devices is tests/integration/config.test.ts.
 *
 * Run: `node_modules/deno/deno test -A tests/unit/capabilities.test.ts` or `node_modules/bun/bin/bun.exe test
 * tests/unit/capabilities.test.ts`.
 * @module
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_EXT_CAP_ID_DSN,
  PCI_EXT_CAP_ID_ERR,
} from "../../lib/abi/pci.ts";
import {
  capabilityName,
  configReaderFromBytes,
  findCapability,
  MsiCapability,
  MsixCapability,
  PciExpressCapability,
  PowerManagementCapability,
  walkCapabilities,
} from "../../lib/capabilities.ts";
import { OutOfRangeError } from "../../lib/errors.ts";

/** A little-endian config-space image under construction. */
class Image {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.#view = new DataView(this.bytes.buffer);
    this.w16(0x00, 0x1b36); // vendor
    this.w16(0x02, 0x0010); // device
  }
  w8(o: number, v: number): this {
    this.#view.setUint8(o, v);
    return this;
  }
  w16(o: number, v: number): this {
    this.#view.setUint16(o, v, true);
    return this;
  }
  w32(o: number, v: number): this {
    this.#view.setUint32(o, v >>> 0, true);
    return this;
  }
  /** Sets PCI_STATUS_CAP_LIST and the first pointer. */
  list(first: number): this {
    return this.w16(0x06, 0x0010).w8(0x34, first);
  }
  cap(at: number, id: number, next: number): this {
    return this.w8(at, id).w8(at + 1, next);
  }
  ext(at: number, id: number, version: number, next: number): this {
    return this.w32(at, id | (version << 16) | (next << 20));
  }
}

/** A PCIe endpoint like QEMU's nvme: PM, MSI, MSI-X, Express; AER and DSN in the extended list. */
function goodDevice(): Image {
  const img = new Image(4096).list(0x40);
  img.cap(0x40, PCI_CAP_ID_PM, 0x50).w16(0x42, 0x0003).w16(0x44, 0x0008); // PM v3, D0, no soft reset
  img.cap(0x50, PCI_CAP_ID_MSI, 0x70).w16(0x52, 0x0080 | 0x0100 | (3 << 1) | (1 << 4) | 1); // 64-bit, masking, 8 cap, 2 en
  img.cap(0x70, PCI_CAP_ID_MSIX, 0x80).w16(0x72, 0x8000 | 0x4000 | 63); // enabled, masked, 64 vectors
  img.w32(0x74, 0x2000 | 0).w32(0x78, 0x3000 | 4); // table BAR0+0x2000, PBA BAR4+0x3000
  img.cap(0x80, PCI_CAP_ID_EXP, 0x00).w16(0x82, 0x0002 | (0x9 << 4)); // v2, RC integrated endpoint
  img.w32(0x84, 0x10000000 | 2); // FLR, max payload supported 512
  img.w16(0x88, (1 << 5) | (2 << 12)); // payload 256, read request 512
  img.w32(0x8c, 0x3 | (16 << 4)); // 8 GT/s x16
  img.w16(0x92, 0x2 | (4 << 4)); // 5 GT/s x4
  img.ext(0x100, PCI_EXT_CAP_ID_ERR, 2, 0x148);
  img.ext(0x148, PCI_EXT_CAP_ID_DSN, 1, 0);
  return img;
}

test("capabilities: a well-formed device lists both lists in link order with the kernel's names", () => {
  const { capabilities, malformed } = walkCapabilities(configReaderFromBytes(goodDevice().bytes));
  assert.equal(malformed, null);
  assert.deepEqual(capabilities.map((c) => [c.name, c.offset, c.extended, c.version]), [
    ["PM", 0x40, false, 0],
    ["MSI", 0x50, false, 0],
    ["MSIX", 0x70, false, 0],
    ["EXP", 0x80, false, 0],
    ["ERR", 0x100, true, 2],
    ["DSN", 0x148, true, 1],
  ]);
  assert.equal(findCapability(capabilities, PCI_CAP_ID_MSIX)?.offset, 0x70);
  assert.equal(findCapability(capabilities, PCI_EXT_CAP_ID_DSN, true)?.offset, 0x148);
  assert.equal(findCapability(capabilities, PCI_EXT_CAP_ID_DSN), undefined); // 0x03 standard is VPD: absent
  assert.equal(capabilityName(0x10, true), "SRIOV");
  assert.equal(capabilityName(0x10, false), "EXP");
  assert.equal(capabilityName(0x3f, false), "unknown 0x3f");
});

test("capabilities: typed views decode MSI, MSI-X, PCI Express and PM", () => {
  const cfg = configReaderFromBytes(goodDevice().bytes);
  const msi = new MsiCapability(cfg, 0x50);
  assert.equal(msi.enabled, true);
  assert.equal(msi.multipleMessageCapable, 8);
  assert.equal(msi.multipleMessageEnable, 2);
  assert.equal(msi.is64Bit, true);
  assert.equal(msi.perVectorMasking, true);
  const msix = new MsixCapability(cfg, 0x70);
  assert.equal(msix.tableSize, 64);
  assert.equal(msix.enabled, true);
  assert.equal(msix.functionMasked, true);
  assert.deepEqual([msix.tableBir, msix.tableOffset, msix.pbaBir, msix.pbaOffset], [0, 0x2000, 4, 0x3000]);
  const exp = new PciExpressCapability(cfg, 0x80);
  assert.equal(exp.version, 2);
  assert.equal(exp.type, 9);
  assert.equal(exp.typeName, "RC_END");
  assert.equal(exp.flr, true);
  assert.equal(exp.maxPayloadSupported, 512);
  assert.equal(exp.maxPayload, 256);
  assert.equal(exp.maxReadRequest, 512);
  assert.deepEqual([exp.maxLinkSpeed, exp.maxLinkWidth, exp.linkSpeed, exp.linkWidth], [8, 16, 5, 4]);
  const pm = new PowerManagementCapability(cfg, 0x40);
  assert.equal(pm.version, 3);
  assert.equal(pm.powerState, 0);
  assert.equal(pm.powerStateName, "D0");
  assert.equal(pm.noSoftReset, true);
});

test("capabilities: a standard list that loops ends with malformed, keeping what it found", () => {
  const img = goodDevice().cap(0x80, PCI_CAP_ID_EXP, 0x50); // EXP points back to MSI
  const { capabilities, malformed } = walkCapabilities(configReaderFromBytes(img.bytes));
  assert.match(malformed ?? "", /pointer at 0x81 \(0x50\) loops back/);
  assert.deepEqual(capabilities.map((c) => c.name), ["PM", "MSI", "MSIX", "EXP"]);
  const self = new Image(256).list(0x40).cap(0x40, PCI_CAP_ID_PM, 0x40); // points at itself
  assert.match(walkCapabilities(configReaderFromBytes(self.bytes)).malformed ?? "", /loops back/);
});

test("capabilities: a pointer into the header is rejected; reserved low bits are masked", () => {
  const bad = goodDevice().cap(0x50, PCI_CAP_ID_MSI, 0x20);
  const r = walkCapabilities(configReaderFromBytes(bad.bytes));
  assert.match(r.malformed ?? "", /pointer at 0x51 \(0x20\) points into the standard header/);
  assert.deepEqual(r.capabilities.map((c) => c.name), ["PM", "MSI"]);
  const first = new Image(256).list(0x3c);
  assert.match(walkCapabilities(configReaderFromBytes(first.bytes)).malformed ?? "", /pointer at 0x34 \(0x3c\)/);
  // Bits 0-1 of a pointer are reserved: 0x53 means 0x50 (as the kernel and lspci read it).
  const masked = new Image(256).list(0x43).cap(0x40, PCI_CAP_ID_PM, 0x52).cap(0x50, PCI_CAP_ID_MSI, 0);
  const m = walkCapabilities(configReaderFromBytes(masked.bytes));
  assert.equal(m.malformed, null);
  assert.deepEqual(m.capabilities.map((c) => c.offset), [0x40, 0x50]);
});

test("capabilities: a truncated list (pointer beyond the bytes there are) and a 0xff id end cleanly", () => {
  const short = new Image(0x80).list(0x40).cap(0x40, PCI_CAP_ID_PM, 0x90);
  const r = walkCapabilities(configReaderFromBytes(short.bytes));
  assert.match(r.malformed ?? "", /\(0x90\) points beyond the 0x80 bytes of config space/);
  assert.deepEqual(r.capabilities.map((c) => c.name), ["PM"]);
  const gone = new Image(256).list(0x40).cap(0x40, 0xff, 0xff);
  assert.match(walkCapabilities(configReaderFromBytes(gone.bytes)).malformed ?? "", /reads 0xff/);
});

test("capabilities: no capability-list bit, or 256-byte config space, means no list to walk", () => {
  const img = goodDevice().w16(0x06, 0);
  const r = walkCapabilities(configReaderFromBytes(img.bytes));
  assert.equal(r.malformed, null);
  assert.deepEqual(r.capabilities.map((c) => c.name), ["ERR", "DSN"]);
  const conventional = walkCapabilities(configReaderFromBytes(goodDevice().bytes.slice(0, 256)));
  assert.deepEqual(conventional.capabilities.map((c) => c.name), ["PM", "MSI", "MSIX", "EXP"]);
  assert.equal(conventional.malformed, null);
});

test("capabilities: extended list — loop, pointer below 0x100, all-ones, placeholder id 0, empty", () => {
  const loop = goodDevice().ext(0x148, PCI_EXT_CAP_ID_DSN, 1, 0x100);
  const l = walkCapabilities(configReaderFromBytes(loop.bytes));
  assert.match(l.malformed ?? "", /extended capability at 0x148 \(0x100\) loops back/);
  assert.deepEqual(l.capabilities.filter((c) => c.extended).map((c) => c.name), ["ERR", "DSN"]);
  const low = goodDevice().ext(0x148, PCI_EXT_CAP_ID_DSN, 1, 0x80);
  assert.match(walkCapabilities(configReaderFromBytes(low.bytes)).malformed ?? "", /\(0x80\) points below 0x100/);
  const ones = goodDevice().ext(0x148, PCI_EXT_CAP_ID_DSN, 1, 0x200).w32(0x200, 0xffffffff);
  assert.match(walkCapabilities(configReaderFromBytes(ones.bytes)).malformed ?? "", /0x200 reads 0xffffffff/);
  // vfio-pci hides a first extended capability behind an id-0 header that still links on.
  const hidden = goodDevice().ext(0x100, 0, 0, 0x148);
  const h = walkCapabilities(configReaderFromBytes(hidden.bytes));
  assert.equal(h.malformed, null);
  assert.deepEqual(h.capabilities.filter((c) => c.extended).map((c) => c.name), ["DSN"]);
  for (const first of [0, 0xffffffff]) {
    const none = walkCapabilities(configReaderFromBytes(goodDevice().w32(0x100, first).bytes));
    assert.equal(none.malformed, null);
    assert.equal(none.capabilities.filter((c) => c.extended).length, 0);
  }
});

test("capabilities: a long chain of distinct links is bounded (never hangs)", () => {
  const img = goodDevice();
  // 0x100 -> 0x104 -> ... -> 0xffc, then back to 0x100: 960 distinct entries, more than fit at 8 bytes each.
  for (let at = 0x100; at < 0x1000; at += 4) img.ext(at, PCI_EXT_CAP_ID_ERR, 1, at + 4 < 0x1000 ? at + 4 : 0x100);
  const r = walkCapabilities(configReaderFromBytes(img.bytes));
  assert.match(r.malformed ?? "", /more than 480 extended capabilities/);
});

test("capabilities: the byte reader is bounds- and alignment-checked", () => {
  const cfg = configReaderFromBytes(new Uint8Array(64));
  assert.throws(() => cfg.read32(64), OutOfRangeError);
  assert.throws(() => cfg.read16(3), /misaligned/);
  assert.equal(cfg.read8(63), 0);
});
