/**
 * The command line's input checks and its resilience to odd devices: widths only as the four decimal numbers,
 * numbers with underscores only between digits, a bad mdev UUID as a usage error (exit 2) before any sysfs or
 * root check, and a capability whose fields cannot be read reported as undecodable while the rest is decoded.
 * @module
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";

import { parseNumber, UsageError } from "../../cli/common.ts";
import { decodeCapabilities, formatCapability } from "../../cli/decode.ts";
import { parseWidth } from "../../cli/register.ts";
import { configReaderFromBytes } from "../../lib/capabilities.ts";

describe("CLI input", () => {
  it("--width is 8, 16, 32 or 64 in decimal, nothing else", () => {
    assert.deepEqual(["8", "16", "32", "64"].map(parseWidth), [8, 16, 32, 64]);
    for (const bad of ["0x20", "0x8", "32.0", "3.2e1", "032", " 32", "+32", "", "0b100000", "Infinity"]) {
      assert.throws(() => parseWidth(bad), UsageError, `--width ${JSON.stringify(bad)}`);
    }
  });

  it("numbers: decimal or 0x hex, underscores only between digits", () => {
    assert.equal(parseNumber("0xffff_0000", "value"), 0xffff0000n);
    assert.equal(parseNumber(" 1_000 ", "offset"), 1000n);
    for (const bad of ["_", "_1", "1_", "1__0", "0x_10", "0x", "1.5", "1e3", "0b1", "0o7", "-0", "+1", "0x1g"]) {
      assert.throws(() => parseNumber(bad, "offset"), UsageError, JSON.stringify(bad));
    }
  });

  it("a capability whose fields run past config space is undecodable; the others are decoded", () => {
    const b = new Uint8Array(256);
    b.set([0x86, 0x80, 0xd3, 0x10], 0);
    b[0x06] = 0x10; // status: capability list
    b[0x34] = 0x40;
    b.set([0x01, 0xf8, 0x03, 0x00, 0x00, 0x00], 0x40); // power management, next at 0xf8
    b.set([0x11, 0x00, 0x3f, 0x00], 0xf8); // MSI-X whose PBA offset register would be at 0x100
    const { capabilities, malformed } = decodeCapabilities(configReaderFromBytes(b));
    assert.equal(malformed, null);
    assert.deepEqual(capabilities.map((c) => c.name), ["PM", "MSIX"]);
    assert.equal(capabilities[0].undecodable, undefined);
    assert.equal(capabilities[0].details.powerState, "D0");
    assert.match(capabilities[1].undecodable ?? "", /beyond the 256 bytes/);
    assert.match(formatCapability(capabilities[1]), /^\[f8\] MSIX {2}\(undecodable: /);
  });
});

describe("vfio mdev with a bad UUID", { timeout: 120_000 }, () => {
  const entry = join(import.meta.dirname ?? ".", "../../cli/vfio.ts");
  const isBun = "Bun" in globalThis;
  it("exits 2 (bad input) with one line, before any root or sysfs check", { timeout: 120_000 }, () => {
    for (const args of [["mdev", "remove", "not-a-uuid"], ["mdev", "create", "mtty", "mtty-1", "--uuid", "xyz"]]) {
      const argv = isBun ? [entry, ...args] : ["run", "-A", "--no-check", entry, ...args];
      const r = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 60_000 });
      assert.equal(r.status, 2, `vfio ${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr.trim(), /^vfio: "(not-a-uuid|xyz)" is not a UUID \(/);
      assert.equal(r.stderr.trim().split("\n").length, 1);
    }
  });
});
