// PCI address parsing: both accepted forms, canonical output, and a typed error naming the bad part of every
// malformed form.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidAddressError } from "../../lib/errors.ts";
import { isPciAddress, parsePciAddress, pciAddress } from "../../lib/pci_address.ts";

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
    ["10000:00:03.0", /domain 0x10000 is out of range \(0-0xffff\)/],
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
