// Every shell command in every README works as written right after `bash tools/setup.sh`: each command of a fenced
// sh/bash block names a program that exists then (a file of the repository such as node_modules/deno/deno, or a
// program on PATH such as bash), a script it hands to bash exists, and no command runs a bare `deno`/`bun` (the
// setup does not put them on PATH).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
/** Shell words that are not programs: builtins and keywords. */
const BUILTINS = new Set(["cd", "export", "ulimit", "source", ".", "exec", "set", "wait", "sleep", "echo", "true"]);
/** Prefixes that run the rest of the line as a command. */
const WRAPPERS = new Set(["sudo", "env", "time", "nohup"]);

/** Every README.md of the repository (not node_modules, not the rig's cache). */
function readmes(dir = ROOT): string[] {
  const found: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name === "node_modules" || e.name.startsWith(".") || path === join(ROOT, "tests/vm/.cache")) continue;
      found.push(...readmes(path));
    } else if (e.name === "README.md") found.push(path);
  }
  return found;
}

/** The commands of the README's fenced sh/bash blocks: continuations and open quotes joined, comments dropped. */
export function shellCommands(markdown: string): string[] {
  const commands: string[] = [];
  let inBlock = false, shell = false, pending = "";
  for (const raw of markdown.split("\n")) {
    const line = raw.trim();
    const fence = /^```\s*([\w-]*)/.exec(line);
    if (fence) {
      shell = !inBlock && ["sh", "bash", "shell"].includes(fence[1]);
      inBlock = !inBlock;
      continue;
    }
    if (!inBlock || !shell) continue;
    const joined = pending + line;
    if (joined.endsWith("\\")) {
      pending = joined.slice(0, -1).trimEnd() + " ";
      continue;
    }
    if ((joined.match(/'/g) ?? []).length % 2 === 1) { // a quoted argument goes on over the next line
      pending = joined + " ";
      continue;
    }
    pending = "";
    const text = joined.replace(/(^|\s)#[^'"]*$/, "").trim();
    if (text !== "") commands.push(text);
  }
  return commands;
}

/**
 * The programs a command line runs: those at its top level, and those of a quoted command handed on (`--cmd '…'`
 * of the guest rig, `sh -c '…'`); other quoted text is an argument.
 */
export function programs(command: string): { program: string; args: string[] }[] {
  const nested: string[] = [];
  const unquoted = command.replace(/(--cmd|-c)\s+('([^']*)'|"([^"]*)")/g, (_m, flag, _q, single, double) => {
    nested.push(single ?? double);
    return `${flag} ARG`;
  }).replace(/'[^']*'|"[^"]*"/g, "ARG");
  const top = unquoted.split(/&&|\|\||[;|&]/).map((part) => part.trim().split(/\s+/)).filter((w) => w[0] !== "")
    .map((words) => {
      while (words.length > 1 && (/^\w+=/.test(words[0]) || WRAPPERS.has(words[0]))) words.shift();
      return { program: words[0], args: words.slice(1) };
    });
  return [...top, ...nested.flatMap(programs)];
}

/** Whether `program` is there after the setup command: a repository file, or a program on PATH. */
function exists(program: string): boolean {
  if (BUILTINS.has(program)) return true;
  if (program.includes("/")) return existsSync(join(ROOT, program)) || existsSync(program);
  return spawnSync("sh", ["-c", 'command -v "$1"', "sh", program]).status === 0;
}

describe("README commands", () => {
  const files = readmes();

  it("finds the READMEs and their commands", () => {
    const names = files.map((f) => relative(ROOT, f));
    for (const want of ["README.md", "examples/README.md", "tests/vm/README.md"]) assert.ok(names.includes(want), want);
    assert.ok(shellCommands(readFileSync(join(ROOT, "README.md"), "utf8")).length >= 2);
  });

  it("parses commands the way a shell splits them", () => {
    const md = "```sh\nA=1 sudo node_modules/deno/deno task vm --cmd 'deno run x; y' \\\n  --mode iommu  # note\n```";
    assert.deepEqual(shellCommands(md), ["A=1 sudo node_modules/deno/deno task vm --cmd 'deno run x; y' --mode iommu"]);
    assert.deepEqual(programs("bash tools/setup.sh && node_modules/deno/deno task example").map((p) => p.program), [
      "bash",
      "node_modules/deno/deno",
    ]);
    assert.deepEqual(programs(shellCommands(md)[0]).map((p) => p.program), ["node_modules/deno/deno", "deno", "y"]);
    assert.deepEqual(shellCommands("```bash\nx --cmd 'a &\n  b; wait'\n```"), ["x --cmd 'a & b; wait'"]);
    assert.deepEqual(shellCommands("```ts\nconst a = 1;\n```\n```console\n$ vfio status\n```"), []);
  });

  for (const file of files) {
    it(`${relative(ROOT, file)}: every command runs a program that exists after setup, and no bare deno or bun`, () => {
      const problems: string[] = [];
      for (const command of shellCommands(readFileSync(file, "utf8"))) {
        for (const { program, args } of programs(command)) {
          if (program === "deno" || program === "bun") problems.push(`bare ${program} (not on PATH): ${command}`);
          if (!exists(program)) problems.push(`${program} does not exist: ${command}`);
          const script = args.find((a) => !a.startsWith("-"));
          if (program === "bash" && script && !existsSync(join(ROOT, script))) {
            problems.push(`bash ${script}: no such file: ${command}`);
          }
        }
      }
      assert.deepEqual(problems, []);
    });
  }
});
