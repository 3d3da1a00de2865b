// The `vfio` CLI's host-side logic: argument parsing helpers, formatting, config-space decoding over plain bytes,
// and the entry point's one-line errors and exit codes for bad command lines (a child process per case, on the
// runtime under test). Kernel-facing behaviour is tested in the guest by tests/integration/cli.test.ts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { parseNumber, UsageError } from "../../cli/common.ts";
import { configDump, decodeCapabilities, decodeHeader, formatCapability } from "../../cli/decode.ts";
import { formatValue, parseBar, parseValue, parseWidth } from "../../cli/register.ts";
import { configReaderFromBytes } from "../../lib/capabilities.ts";
import { byteSize } from "../../lib/inspect.ts";

describe("CLI helpers", () => {
  it("parse numbers, BARs, widths and values with usage errors", () => {
    assert.equal(parseNumber("0x80", "offset"), 0x80n);
    assert.equal(parseNumber("1_000", "offset"), 1000n);
    assert.throws(() => parseNumber("-1", "offset"), UsageError);
    assert.throws(() => parseNumber("0xg", "offset"), /invalid offset "0xg"/);
    assert.deepEqual([parseBar("0"), parseBar("BAR2"), parseBar("bar5")], [0, 2, 5]);
    assert.throws(() => parseBar("6"), /BAR6 does not exist/);
    assert.throws(() => parseBar("x"), UsageError);
    assert.equal(parseWidth(undefined), 32);
    assert.equal(parseWidth("64"), 64);
    assert.throws(() => parseWidth("12"), /use --width 8, 16, 32 or 64/);
    assert.equal(parseValue("0xff", 8), 0xffn);
    assert.throws(() => parseValue("0x100", 8), /does not fit in 8 bits \(the largest 8-bit value is 0xff\)/);
    assert.equal(parseValue("0xffffffffffffffff", 64), 0xffffffffffffffffn);
  });

  it("format values and sizes", () => {
    assert.equal(formatValue(0x10000edn, 32), "0x010000ed");
    assert.equal(formatValue(0xedn, 8), "0xed");
    assert.equal(formatValue(1n, 64), "0x0000000000000001");
    assert.deepEqual([byteSize(1 << 20), byteSize(16384), byteSize(256), byteSize(1000)], [
      "1 MiB",
      "16 KiB",
      "256 B",
      "1000 B",
    ]);
  });

  it("decodes a header, an MSI-X capability and dumps config space", () => {
    const b = new Uint8Array(256);
    b.set([0x36, 0x1b, 0x10, 0x00], 0); // 1b36:0010
    b[0x06] = 0x10; // status: capability list
    b.set([0x02, 0x08, 0x01], 0x09); // class 010802
    b[0x34] = 0x40;
    b.set([0x11, 0x00, 0x3f, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00], 0x40); // MSI-X, 64 vectors
    const cfg = configReaderFromBytes(b);
    const h = decodeHeader(cfg);
    assert.deepEqual([h.vendor, h.device, h.class], [0x1b36, 0x0010, 0x010802]);
    const { capabilities, malformed } = decodeCapabilities(cfg);
    assert.equal(malformed, null);
    assert.equal(capabilities.length, 1);
    assert.deepEqual(capabilities[0].details, {
      vectors: 64,
      enabled: false,
      functionMasked: false,
      tableBar: 0,
      tableOffset: 0x2000,
      pbaBar: 0,
      pbaOffset: 0x3000,
    });
    assert.match(formatCapability(capabilities[0]), /^\[40\] MSIX {2}vectors=64 .*tableOffset=0x2000/);
    const dump = configDump(cfg).split("\n");
    assert.equal(dump.length, 16);
    assert.equal(dump[0], "000: 36 1b 10 00 00 00 10 00 00 02 08 01 00 00 00 00");
  });
});

describe("vfio entry point", { timeout: 120_000 }, () => {
  const entry = join(import.meta.dirname ?? ".", "../../cli/vfio.ts");
  const isBun = "Bun" in globalThis;
  const vfio = (...args: string[]): { code: number | null; out: string; err: string } => {
    const argv = isBun ? [entry, ...args] : ["run", "-A", "--no-check", entry, ...args];
    const r = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const oneLine = (err: string, pattern: RegExp): void => {
    const lines = err.trim().split("\n");
    assert.equal(lines.length, 1, err);
    assert.match(lines[0], pattern);
  };

  it("--help lists the commands and exit codes; each command has its own --help", { timeout: 120_000 }, () => {
    const r = vfio("--help");
    assert.equal(r.code, 0);
    for (const c of ["status", "groups", "bind", "unbind", "restore", "noiommu", "info", "config", "read", "write"]) {
      assert.match(r.out, new RegExp(`^  ${c} `, "m"));
    }
    assert.match(r.out, /Exit codes: 0 done, 1 failed, 2 bad command line, 3 refused/);
    const h = vfio("read", "--help");
    assert.equal(h.code, 0);
    assert.match(h.out, /^usage: vfio read <device> <bar> <offset>/);
  });

  it("bad command lines: exit 2 and one line on stderr", { timeout: 120_000 }, () => {
    const cases: [string[], RegExp][] = [
      [[], /^$/],
      [["frobnicate"], /^vfio: unknown command "frobnicate" \(commands: status, /],
      [["status", "--bogus"], /^vfio: Unknown option '--bogus' \(see vfio status --help\)$/],
      [["status", "extra"], /^vfio: unexpected argument "extra" \(usage: vfio status/],
      [["read", "00:03.0"], /^vfio: missing argument \(usage: vfio read/],
      [["read", "00:zz.0", "0", "0"], /neither a PCI address nor a vendor:device id/],
      [["read", "00:03.0", "9", "0"], /^vfio: BAR9 does not exist \(PCI devices have BAR0 to BAR5\)$/],
      [["write", "00:03.0", "0", "0", "0x1ff", "--width", "8"], /does not fit in 8 bits/],
      [["info", "--iommu", "best", "00:03.0"], /--iommu best is not an IOMMU path/],
      [["noiommu"], /^vfio: missing argument/],
      [["bind"], /^vfio: missing device/],
    ];
    for (const [args, pattern] of cases) {
      const r = vfio(...args);
      assert.equal(r.code, 2, `vfio ${args.join(" ")}: ${r.err}`);
      if (args.length > 0) oneLine(r.err, pattern);
    }
  });

  it("a device that does not exist: exit 1, one line", { timeout: 120_000 }, () => {
    const r = vfio("info", "0000:7f:1f.7");
    assert.equal(r.code, 1);
    oneLine(r.err, /^vfio: invalid PCI address "0000:7f:1f\.7": no PCI device 0000:7f:1f\.7 on this machine/);
  });
});
