/**
 * The library can be imported from anywhere, with nothing bound at import: a script outside the repository
 * imports `mod.ts` under Deno with only `--allow-ffi` (or no permission at all) and parses an address; the same
 * import over `http://` from a local server (as JSR and `deno run https://…` serve it) loads the embedded C poll
 * helper, or the pure-TypeScript fallback with `VFIO_TS_POLL_HELPER=off`; under Bun from a scratch folder; and a
 * `bun build` bundle, which must carry the helper and the wait worker inside it.
 * Each import runs in a fresh Deno or Bun process, whichever runtime runs this file.
 *
 * Run: `node_modules/deno/deno test -A tests/unit/import.test.ts` or `bun test tests/unit/import.test.ts`.
 * @module
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = realpathSync(fileURLToPath(new URL("../../", import.meta.url)));
const DENO = join(ROOT, "node_modules/deno/deno"), BUN = join(ROOT, "node_modules/bun/bin/bun.exe");
const SLOW = { timeout: 120_000 };

/** What the probe script prints: the parsed address, the helper status, or the error of touching libc. */
interface Probe {
  address: string;
  helper?: { native: boolean; source: string; reason: string | null };
  libcError?: string;
}

/** Script lines calling libc for the first time, keeping the error. */
const libcCall = (from: string): string =>
  `const { libc } = await import(${JSON.stringify(from)});
try { libc.getpid(); } catch (e) { out.libcError = \`\${e.name}: \${e.message}\`; }`;

/** A script importing vfio-ts from `from` (a URL), parsing an address and, when asked, touching the helper. */
const probeScript = (from: string, touch: "helper" | "libc" | "none"): string =>
  `import { parsePciAddress, pollHelperStatus } from ${JSON.stringify(from)};
const out = { address: String(parsePciAddress("0000:00:03.0")) };
${touch === "helper" ? "out.helper = pollHelperStatus();" : ""}
${touch === "libc" ? libcCall(from.replace(/mod\.ts$/, "ffi/libc.ts")) : ""}
console.log(JSON.stringify(out));
`;

/**
 * Runs a command without blocking this process's event loop (the HTTP server below answers meanwhile). Under Deno
 * through `Deno.Command`: Deno's `node:child_process` hands its own permissions to a child that is the same `deno`
 * binary (`process.execPath`), so a child meant to run with no permission would get this test's `-A`.
 */
async function run(cmd: string, args: string[], env: Record<string, string> = {}, cwd?: string): Promise<string> {
  const fullEnv = { ...process.env, NO_COLOR: "1", ...env } as Record<string, string>;
  if ("Deno" in globalThis) {
    const r = await new Deno.Command(cmd, { args, cwd, env: fullEnv, signal: AbortSignal.timeout(100_000) }).output();
    const [out, err] = [r.stdout, r.stderr].map((b) => new TextDecoder().decode(b));
    if (!r.success) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}\n${out}\n${err}`);
    return out;
  }
  return await new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: fullEnv, timeout: 100_000 }, (e, out, err) => {
      if (e) reject(new Error(`${cmd} ${args.join(" ")}: ${e.message}\n${out}\n${err}`));
      else resolve(out);
    });
  });
}

const lastJson = (out: string): Probe => JSON.parse(out.trim().split("\n").at(-1)!);

let scratch = "";
before(() => {
  scratch = mkdtempSync(join(tmpdir(), "vfio-ts-import-"));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes the probe into the scratch folder (no deno.json, no package.json: a user's own folder). */
function probeFile(name: string, from: string, touch: "helper" | "libc" | "none"): string {
  const file = join(scratch, name);
  writeFileSync(file, probeScript(from, touch));
  return file;
}

describe("import from a file URL outside the repository", () => {
  const mod = pathToFileURL(join(ROOT, "mod.ts")).href;

  it("Deno with only --allow-ffi: importing and parsing an address need nothing more", SLOW, async () => {
    const file = probeFile("ffi_only.ts", mod, "helper");
    const out = lastJson(await run(DENO, ["run", "--no-prompt", "--allow-ffi", file], {}, scratch));
    assert.equal(out.address, "0000:00:03.0");
    assert.equal(out.helper?.native, true, `${out.helper?.reason}`);
  });

  it("Deno with no permission at all: importing works, the first libc call says what to grant", SLOW, async () => {
    const file = probeFile("no_permission.ts", mod, "libc");
    const out = lastJson(await run(DENO, ["run", "--no-prompt", file], {}, scratch));
    assert.equal(out.address, "0000:00:03.0");
    assert.match(out.libcError ?? "", /^UnsupportedError: cannot open libc .*--allow-ffi/);
  });

  it("Bun from a scratch folder: importing, parsing and loading the helper", SLOW, async () => {
    const file = probeFile("bun.ts", mod, "helper");
    const out = lastJson(await run(BUN, [file], {}, scratch));
    assert.equal(out.address, "0000:00:03.0");
    assert.equal(out.helper?.native, true, `${out.helper?.reason}`);
  });
});

describe("a Bun bundle (bun build)", () => {
  it("carries the poll helper and the wait worker: nothing is looked up beside the bundle", SLOW, async () => {
    const out = join(scratch, "bundle");
    await run(BUN, ["build", "mod.ts", "ffi/libc.ts", "--target", "bun", "--outdir", out], {}, ROOT);
    const file = join(out, "probe.ts");
    writeFileSync(
      file,
      `${probeScript("./mod.js", "helper")}
import { libc } from "./ffi/libc.js";
const fd = libc.eventfd(0, 0);
setTimeout(() => libc.write(fd, new BigUint64Array([1n])), 20);
console.log(JSON.stringify({ ...out, readable: await libc.waitReadable(fd, 5000) }));
`,
    );
    const probe = lastJson(await run(BUN, [file], {}, out)) as Probe & { readable: boolean };
    assert.equal(probe.address, "0000:00:03.0");
    assert.equal(probe.helper?.native, true, `${probe.helper?.reason}`);
    assert.equal(probe.readable, true, "the eventfd wait of the bundled libc");
  });
});

describe("import over http:// from a local server", () => {
  let server: Server;
  let base = "";
  before(async () => {
    server = createServer((req, res) => {
      const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
      const file = join(ROOT, path);
      if (!file.startsWith(ROOT + sep) || file.includes(`${sep}node_modules${sep}`)) {
        res.writeHead(403).end();
        return;
      }
      try {
        const body = readFileSync(file);
        const type = file.endsWith(".ts") ? "application/typescript" : "application/octet-stream";
        res.writeHead(200, { "content-type": type }).end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const viaHttp = async (name: string, env: Record<string, string>, extra: string[]): Promise<Probe> => {
    const file = probeFile(name, `${base}/mod.ts`, "helper");
    const host = new URL(base).host;
    const args = ["run", "--no-prompt", "--allow-ffi", `--allow-import=${host}`, ...extra, file];
    return lastJson(await run(DENO, args, { DENO_DIR: join(scratch, `deno-dir-${name}`), ...env }, scratch));
  };

  it("Deno: the embedded C poll helper loads from a URL import", SLOW, async () => {
    const out = await viaHttp("http_helper.ts", {}, []);
    assert.equal(out.address, "0000:00:03.0");
    assert.equal(out.helper?.native, true, `${out.helper?.reason}`);
    assert.match(out.helper?.source ?? "", /^embedded linux-/);
  });

  it("Deno: VFIO_TS_POLL_HELPER=off gives the pure-TypeScript fallback, without a crash", SLOW, async () => {
    const env = { VFIO_TS_POLL_HELPER: "off" };
    const out = await viaHttp("http_off.ts", env, ["--allow-env=VFIO_TS_POLL_HELPER"]);
    assert.equal(out.address, "0000:00:03.0");
    assert.equal(out.helper?.native, false);
    assert.match(out.helper?.reason ?? "", /VFIO_TS_POLL_HELPER=off/);
  });

  it("Deno: a path in VFIO_TS_POLL_HELPER is never loaded", SLOW, async () => {
    const env = { VFIO_TS_POLL_HELPER: "/nonexistent/libevil.so" };
    const out = await viaHttp("http_path.ts", env, ["--allow-env=VFIO_TS_POLL_HELPER"]);
    assert.equal(out.helper?.native, false);
    assert.match(out.helper?.reason ?? "", /not supported/);
  });
});
