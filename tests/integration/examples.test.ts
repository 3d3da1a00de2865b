// The examples run as users run them: a child process of the same runtime, exit status 0 when every check passed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { describe, it } from "node:test";

const inVm = process.env.VFIO_TS_IN_VM === "1";
const isBun = "Bun" in globalThis;
const edu = (process.env.VFIO_TS_EDU ?? "").split(",")[0];

function run(script: string, ...args: string[]): { status: number | null; out: string } {
  const argv = isBun ? [script, ...args] : ["run", "-A", "--no-check", script, ...args];
  const r = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("examples", { skip: !inVm && "needs the VFIO guest (deno task test:vm)" }, () => {
  it("edu.ts passes every check", () => {
    const extra = process.env.VFIO_TS_MODE === "noiommu" ? ["--noiommu"] : [];
    const r = run("examples/edu.ts", edu, ...extra);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /all checks passed/);
  });
});
