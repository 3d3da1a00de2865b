// PCI address parsing: both accepted forms, canonical output, and a typed error naming the bad part of every
// malformed form.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { InvalidAddressError } from "../../lib/errors.ts";
import { isPciAddress, parsePciAddress, pciAddress } from "../../lib/pci_address.ts";
import { listPciDevices, pciDevice } from "../../lib/sysfs/pci.ts";

describe("parsePciAddress", () => {
  it("parses the full form", () => {
    const a = parsePciAddress("0000:00:03.0");
    assert.deepEqual([a.domain, a.bus, a.device, a.function], [0, 0, 3, 0]);
    assert.equal(a.toString(), "0000:00:03.0");
  });

  it("parses the short form as domain 0", () => {
    const a = parsePciAddress("3b:1f.7");
    assert.deepEqual([a.domain, a.bus, a.device, a.function], [0, 0x3b, 0x1f, 7]);
    assert.equal(`${a}`, "0000:3b:1f.7");
  });

  it("accepts upper case, surrounding white space and the largest values", () => {
    assert.equal(parsePciAddress(" FFFF:FF:1F.7\n").toString(), "ffff:ff:1f.7");
    assert.equal(parsePciAddress("0001:02:03.4").domain, 1);
  });

  it("returns a parsed address unchanged and freezes it", () => {
    const a = parsePciAddress("00:03.0");
    assert.equal(parsePciAddress(a), a);
    assert.ok(Object.isFrozen(a));
  });

  const bad: Array<[string, RegExp]> = [
    ["", /empty/],
    ["   ", /empty/],
    ["0000:00:03", /function number is missing/],
    ["00.0", /expected 1 or 2 colons/],
    ["0000:0000:00:03.0", /expected 1 or 2 colons/],
    ["0000:00:03.", /function number is empty/],
    [":00:03.0", /domain number is empty/],
    ["0000::03.0", /bus number is empty/],
    ["0000:zz:03.0", /bus "zz" is not hexadecimal/],
    ["0000:00:0g.0", /device "0g" is not hexadecimal/],
    ["0000:00:03.x", /function "x" is not hexadecimal/],
    ["-1:00:03.0", /domain "-1" is not hexadecimal/],
    ["100000000:00:03.0", /domain 0x100000000 is out of range \(0-0xffffffff\)/],
    ["0000:100:03.0", /bus 0x100 is out of range \(0-0xff\)/],
    ["0000:00:20.0", /device 0x20 is out of range \(0-0x1f\)/],
    ["0000:00:03.8", /function 0x8 is out of range \(0-0x7\)/],
    ["0000:00:03.0.1", /device "03.0" is not hexadecimal/],
    ["1234:11e8", /function number is missing/],
  ];
  for (const [text, problem] of bad) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(() => parsePciAddress(text), (e: unknown) => {
        assert.ok(e instanceof InvalidAddressError);
        assert.equal(e.address, text);
        assert.match(e.message, problem);
        assert.match(e.message, /DDDD:BB:DD\.F/); // the remedy shows the accepted form
        return true;
      });
      assert.equal(isPciAddress(text), false);
    });
  }
});

describe("isPciAddress", () => {
  it("tells addresses from other text", () => {
    assert.equal(isPciAddress("0000:00:03.0"), true);
    assert.equal(isPciAddress("00:03.0"), true);
    assert.equal(isPciAddress("1234:11e8"), false);
  });
});

describe("pciAddress", () => {
  it("builds from numbers and range-checks them", () => {
    assert.equal(pciAddress(0, 0x3b, 0x1f, 7).toString(), "0000:3b:1f.7");
    assert.throws(() => pciAddress(0, 0, 32, 0), InvalidAddressError);
    assert.throws(() => pciAddress(0, 0, 0, 1.5), InvalidAddressError);
    assert.throws(() => pciAddress(-1, 0, 0, 0), InvalidAddressError);
  });
});

describe("32-bit PCI domains (Intel VMD puts devices at 0x10000 and up)", () => {
  it("parse, build and print like the kernel (%04x)", () => {
    const a = parsePciAddress("10000:e1:00.0");
    assert.deepEqual([a.domain, a.bus, a.device, a.function], [0x10000, 0xe1, 0, 0]);
    assert.equal(a.toString(), "10000:e1:00.0");
    assert.equal(parsePciAddress("FFFFFFFF:00:00.0").toString(), "ffffffff:00:00.0");
    assert.equal(pciAddress(0x10001, 2, 3, 4).toString(), "10001:02:03.4");
    assert.throws(() => pciAddress(2 ** 32, 0, 0, 0), InvalidAddressError);
    assert.equal(isPciAddress("10000:00:01.0"), true);
  });

  it("are listed from sysfs, in numeric order after domain ffff", () => {
    const root = mkdtempSync(join(tmpdir(), "vfio-ts-vmd-"));
    try {
      for (const [name, device] of [["10000:01:00.0", "0xa80a"], ["0000:00:03.0", "0x10d3"], ["ffff:00:00.0", "1"]]) {
        const dir = join(root, "sys/bus/pci/devices", name);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "vendor"), "0x8086\n");
        writeFileSync(join(dir, "device"), `${device}\n`);
      }
      const listed = listPciDevices({ root }).map((d) => d.address);
      assert.deepEqual(listed, ["0000:00:03.0", "ffff:00:00.0", "10000:01:00.0"]);
      assert.equal(pciDevice("10000:01:00.0", { root }).device, 0xa80a);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
