// The examples run as users run them: a child process of the same runtime, exit status 0 when every check passed.
// With the rig's --high-dma the DMA buffer's bus address they print must be at or above 4 GiB.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { describe, it } from "node:test";
import { assertHighDma, guest, skipIf } from "./guest.ts";

const isBun = "Bun" in globalThis;

function run(script: string, ...args: string[]): { status: number | null; out: string; stdout: string } {
  const argv = isBun ? [script, ...args] : ["run", "-A", "--no-check", script, ...args];
  const r = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

describe("examples", { skip: skipIf(guest.edu, "edu", "examples") }, () => {
  it("edu.ts passes every check", () => {
    const r = run("examples/edu.ts", guest.edu!, ...guest.noiommuFlag);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /all checks passed/);
    assertHighDma(r.out, /DMA round trip of \d+ bytes \(bus address (0x[0-9a-f]+)\)/);
  });

  it("edu.ts --json: one JSON object on stdout (the shared harness), the narrative on stderr", () => {
    const r = run("examples/edu.ts", guest.edu!, ...guest.noiommuFlag, "--json");
    assert.equal(r.status, 0, r.out);
    const report = JSON.parse(r.stdout) as { program: string; ok: boolean; checks: { ok: boolean }[] };
    assert.equal(report.program, "edu");
    assert.equal(report.ok, true);
    assert.ok(report.checks.length >= 5 && report.checks.every((c) => c.ok), r.stdout);
  });
});
