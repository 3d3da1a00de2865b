// The example harness (examples/harness.ts): integer options, the check list, and --json (one JSON object on
// stdout, the narrative moved to stderr, the exit status from the failures).
import assert from "node:assert/strict";
import process from "node:process";
import { afterEach, describe, it } from "node:test";
import { Checks, intOption, runChecks } from "../../examples/harness.ts";
import { VfioError } from "../../lib/errors.ts";

/** Runs `body` with console.log and console.error captured. */
async function captured(body: () => Promise<void>): Promise<{ out: string[]; err: string[] }> {
  const [log, error] = [console.log, console.error];
  const out: string[] = [];
  const err: string[] = [];
  console.log = (...a: unknown[]): void => void out.push(a.join(" "));
  console.error = (...a: unknown[]): void => void err.push(a.join(" "));
  try {
    await body();
  } finally {
    [console.log, console.error] = [log, error];
  }
  return { out, err };
}

afterEach(() => {
  process.exitCode = 0;
});

describe("example harness", () => {
  it("intOption takes integers in range and names the range otherwise", () => {
    assert.equal(intOption("batch", "32", 1, 256), 32);
    for (const bad of ["0", "257", "1.5", "x"]) {
      assert.throws(
        () => intOption("batch", bad, 1, 256),
        (e: Error) => e instanceof VfioError && /1\.\.256/.test(e.message),
      );
    }
  });

  it("prints each check and the summary, and sets the exit status", async () => {
    const checks = new Checks();
    const { out } = await captured(() =>
      runChecks("demo", checks, () => {
        checks.check(true, "one");
        checks.check(false, "two");
      })
    );
    assert.deepEqual(out, ["ok   one", "FAIL two", "1 check(s) failed"]);
    assert.equal(process.exitCode, 1);
  });

  it("--json: one object on stdout, the narrative and nothing else on stderr; an error is a failure", async () => {
    const checks = new Checks({ json: true });
    const { out, err } = await captured(() =>
      runChecks("demo", checks, () => {
        console.log("narrative");
        checks.check(true, "one");
        throw new Error("broken");
      })
    );
    assert.deepEqual(err, ["narrative"]);
    assert.equal(out.length, 1);
    assert.deepEqual(JSON.parse(out[0]), {
      program: "demo",
      ok: false,
      failures: 1,
      checks: [{ ok: true, what: "one" }],
      error: "broken",
    });
    assert.equal(process.exitCode, 1);
  });
});
