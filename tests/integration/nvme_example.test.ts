// examples/nvme.ts as users run it (a child process of the same runtime) on the rig's nvme, whose fresh image holds
// the test pattern (each 32-bit word = its byte offset) in its first MiB and zeros after it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { describe, it } from "node:test";
import { assertHighDma, guest, skipUnless } from "./guest.ts";

const isBun = "Bun" in globalThis;
const nvme = guest.nvme ?? "";
const noiommu = guest.noiommuFlag;

function nvmeExample(...args: string[]): { status: number | null; out: string } {
  const script = ["examples/nvme.ts", nvme, ...noiommu, ...args];
  const argv = isBun ? script : ["run", "-A", "--no-check", ...script];
  const r = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const LONG = { timeout: 180_000 }; // child processes under TCG outlast bun test's 5 s default
const skip = skipUnless(!nvme && "no nvme bound to vfio-pci in the guest", "examples/nvme.ts");

describe("examples/nvme.ts", { skip }, () => {
  it("identifies the controller and namespace, reads LBA 0..63 holding the image's pattern", LONG, () => {
    const r = nvmeExample("--check", "--blocks", "64");
    console.log(r.out);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /^mn +: QEMU NVMe Ctrl$/m);
    assert.match(r.out, /^sn +: vfio-ts-nvme0$/m);
    assert.match(r.out, /^nsze +: 0x20000$/m); // 64 MiB of 512-byte blocks
    assert.match(r.out, /read by MSI-X interrupt \([1-9]\d* interrupts/);
    assert.match(r.out, /ok {3}blocks 0\.\.63 hold the pattern with seed 0x0/);
    assert.match(r.out, /all checks passed/);
    assertHighDma(r.out, /admin queues of \d+ entries at (0x[0-9a-f]+)/);
  });

  it("reads the whole patterned MiB on scattered 4 KiB pages: several commands, each with a PRP list", LONG, () => {
    const r = nvmeExample("--check", "--blocks", "2048", "--hugepages", "never");
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /2 command\(s\) of at most 524288 bytes\), buffers on 4 KiB pages/);
  });

  it("writes a pattern to a high LBA range, then a fresh run reads it back", LONG, () => {
    const w = nvmeExample("--write", "--lba", "100000", "--blocks", "40", "--seed", "0x5eed1234");
    assert.equal(w.status, 0, w.out);
    assert.match(w.out, /wrote the pattern \(seed 0x5eed1234\) and flushed/);
    const r = nvmeExample("--check", "--lba", "100000", "--blocks", "40", "--seed", "0x5eed1234", "--json");
    assert.equal(r.status, 0, r.out);
    const doc = JSON.parse(r.out);
    assert.equal(doc.ok, true);
    assert.equal(doc.namespace.blockSize, 512);
    assert.equal(doc.io.blocks, 40);
  });

  it("fails (exit 1, the first bad word named) when the blocks do not hold the pattern", LONG, () => {
    const r = nvmeExample("--check", "--lba", "4096", "--blocks", "1"); // past the patterned MiB: zeros
    assert.equal(r.status, 1, r.out);
    assert.match(
      r.out,
      /FAIL blocks 4096\.\.4096 hold the pattern with seed 0x0: byte 2097152 holds 0x0, expected 0x200000/,
    );
  });

  it("refuses --write without an explicit --lba, a range past the namespace end, an inactive namespace", LONG, () => {
    const w = nvmeExample("--write");
    assert.equal(w.status, 1, w.out);
    assert.match(w.out, /choose them with an explicit --lba/);
    const r = nvmeExample("--lba", "131070", "--blocks", "4");
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /past the namespace end/);
    const n = nvmeExample("--nsid", "2"); // QEMU's controller has namespace 1 only
    assert.equal(n.status, 1, n.out);
    assert.match(n.out, /namespace 2 is not active|invalid namespace/);
  });
});
