// Text that is true: every repository path named in the project's sources, comments and READMEs (`lib/...`,
// `tests/...`, a Markdown file name ...) exists, so no comment points to a file that was renamed, removed or never
// added. Absolute paths (/dev/vfio/..., /sys/...) are the machine's, not the repository's, and are not checked;
// the few repository-shaped names that are deliberately not here are listed in NOT_IN_REPO with the reason.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, it } from "node:test";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** Names shaped like repository paths that are somewhere else on purpose. */
const NOT_IN_REPO: Readonly<Record<string, string>> = {
  "lib/interval_tree.c": "a file of the Linux source tree that tests/vm/setup.sh compiles from",
};

/** A path below a top-level folder of the repository, or a bare Markdown file name. */
const NAMED_PATH =
  /(?<![\w./-])((?:lib|ffi|cli|examples|tests|bench|tools|docs)\/[\w./-]*\w\.(?:ts|md|sh|c|h|json|py|txt)|[\w-]+\.md)(?![\w/])/g;
/** Files whose text is read: sources, scripts and documentation. */
const TEXT_FILE = /\.(ts|md|sh|c|h)$/;

function textFiles(dir = ROOT): string[] {
  const found: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name === "node_modules" || e.name.startsWith(".")) continue;
      found.push(...textFiles(path));
    } else if (TEXT_FILE.test(e.name)) found.push(path);
  }
  return found;
}

describe("named paths", () => {
  it("every repository path named in a source file or README exists", () => {
    const missing: string[] = [];
    let named = 0;
    for (const file of textFiles()) {
      for (const [, path] of readFileSync(file, "utf8").matchAll(NAMED_PATH)) {
        named++;
        if (path in NOT_IN_REPO || path.startsWith("tests/vm/.cache/")) continue;
        if (existsSync(join(ROOT, path)) || existsSync(join(dirname(file), path))) continue;
        missing.push(`${relative(ROOT, file)} names ${path}`);
      }
    }
    assert.ok(named > 100, `the scan found the paths the project names (${named})`);
    assert.deepEqual(missing, [], "paths named but not in the repository");
  });

  it("the allow-list holds only names that really are not in the repository", () => {
    for (const path of Object.keys(NOT_IN_REPO)) assert.equal(existsSync(join(ROOT, path)), false, path);
  });
});
