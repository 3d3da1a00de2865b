// The user's path: a script in a folder of its own, with none of this repository's deno.json or package.json, imports
// vfio-ts the way a user would and drives the guest's edu (a DMA round trip, RAM -> device -> RAM, each DMA ending in
// an MSI that the script awaits). Deno imports it by http:// URL from a server this test starts on 127.0.0.1 (as
// `deno run https://…` and JSR serve modules), with a fresh DENO_DIR; Bun installs the `npm pack` tarball into a
// scratch project (`bun add ./vfio-ts-vfio-<version>.tgz`, offline: the package has no dependencies) and imports
// `@vfio-ts/vfio`. The guest's /tmp is an empty tmpfs, outside the repository.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize, sep } from "node:path";
import process from "node:process";
import { after, describe, it } from "node:test";
import { guest } from "./guest.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const isBun = "Bun" in globalThis;

/** The user's script: what examples/quickstart.ts does, plus the way back and a second MSI. */
function userScript(specifier: string): string {
  return `import { IrqIndex, openDevice } from "${specifier}";
import process from "node:process";

const DMA_SRC = 0x80, DMA_DST = 0x88, DMA_COUNT = 0x90, DMA_CMD = 0x98; // edu's DMA engine
const IRQ_STATUS = 0x24, IRQ_ACK = 0x64, EDU_BUFFER = 0x40000n, BYTES = 2048;
using dev = openDevice(process.argv[2], { noiommu: process.argv[3] === "noiommu" });
dev.config.enableMemory();
dev.config.enableBusMaster();
const bar0 = dev.bar(0);
using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
const buf = dev.allocDma(8192);
for (let i = 0; i < BYTES; i++) buf.u8[i] = (i * 13 + 5) & 0xff;
async function dma(src: bigint, dst: bigint, toRam: boolean): Promise<number> {
  bar0.write64(DMA_SRC, src);
  bar0.write64(DMA_DST, dst);
  bar0.write64(DMA_COUNT, BigInt(BYTES));
  bar0.write64(DMA_CMD, toRam ? 0b111n : 0b101n); // start, direction, raise an interrupt when done
  const n = await msi.wait(0, { timeoutMs: 5000 });
  bar0.write32(IRQ_ACK, bar0.read32(IRQ_STATUS));
  return n;
}
const irqsIn = await dma(buf.busAddress(0), EDU_BUFFER, false);
const irqsOut = await dma(EDU_BUFFER, buf.busAddress(4096), true);
const same = buf.u8.subarray(0, BYTES).every((v, i) => buf.u8[4096 + i] === v);
console.log(JSON.stringify({ id: bar0.read32(0).toString(16), irqsIn, irqsOut, same }));
`;
}

/** Runs `cmd` without blocking the event loop (the HTTP server answers the child from this process). */
function runAsync(
  cmd: string,
  args: string[],
  options: { cwd: string; env: Record<string, string | undefined> },
): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
  });
}

/** Serves the repository's files read-only on 127.0.0.1, `.ts` as application/typescript (as JSR and deno.land do). */
function serveRepository(): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(join(ROOT, decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)));
    if (!path.startsWith(ROOT + sep)) return void res.writeHead(403).end();
    try {
      const body = readFileSync(path);
      const type = extname(path) === ".ts" ? "application/typescript" : "application/octet-stream";
      res.writeHead(200, { "content-type": type }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function checkResult(r: { status: number | null; out: string }): void {
  assert.equal(r.status, 0, r.out);
  const line = r.out.split("\n").find((l) => l.startsWith("{"));
  assert.ok(line, r.out);
  const result = JSON.parse(line);
  assert.equal(result.id, "10000ed", r.out);
  assert.ok(result.irqsIn >= 1 && result.irqsOut >= 1, `an MSI after each DMA: ${line}`);
  assert.equal(result.same, true, `the bytes came back: ${line}`);
}

describe("a script outside the repository", { skip: !guest.edu && "needs the guest's edu (deno task test:vm)" }, () => {
  const scratch = mkdtempSync(join(tmpdir(), "vfio-ts-user-"));
  after(() => rmSync(scratch, { recursive: true, force: true }));
  const args = [guest.edu!, guest.mode];

  it("Deno imports vfio-ts by http:// URL and runs the edu DMA round trip with MSIs", {
    skip: isBun,
    timeout: 300_000,
  }, async () => {
    // The rig's guest boots with its loopback interface down (it has no network at all).
    const lo = spawnSync("ip", ["link", "set", "lo", "up"], { encoding: "utf8" });
    assert.equal(lo.status, 0, `ip link set lo up: ${lo.error?.message ?? lo.stderr}`);
    const server = await serveRepository();
    try {
      const { port } = server.address() as AddressInfo;
      writeFileSync(join(scratch, "my_probe.ts"), userScript(`http://127.0.0.1:${port}/mod.ts`));
      // What the README tells a user to grant: all (Deno grants /sys, /dev and /proc only with --allow-all).
      const r = await runAsync(
        process.execPath,
        [
          "run",
          "-A",
          "my_probe.ts",
          ...args,
        ],
        { cwd: scratch, env: { ...process.env, DENO_DIR: join(scratch, "deno-dir") } },
      );
      checkResult(r);
    } finally {
      server.close();
    }
  });

  it("Bun installs the npm pack tarball into a scratch project and imports @vfio-ts/vfio", {
    skip: !isBun,
    timeout: 300_000,
  }, async () => {
    const pack = spawnSync("npm", ["pack", "--pack-destination", scratch, "--loglevel=error"], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, npm_config_cache: join(scratch, "npm-cache"), npm_config_update_notifier: "false" },
    });
    assert.equal(pack.status, 0, `npm pack: ${pack.error?.message ?? ""}${pack.stdout}${pack.stderr}`);
    const tarball = readdirSync(scratch).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball, `npm pack wrote no tarball: ${pack.stdout}`);
    const project = join(scratch, "project");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "my-probe", private: true, type: "module" }));
    const add = spawnSync(process.execPath, ["add", join(scratch, tarball)], {
      cwd: project,
      encoding: "utf8",
      env: { ...process.env, BUN_INSTALL_CACHE_DIR: join(scratch, "bun-cache") },
    });
    assert.equal(add.status, 0, `bun add: ${add.stdout}${add.stderr}`);
    writeFileSync(join(project, "my_probe.ts"), userScript("@vfio-ts/vfio"));
    checkResult(await runAsync(process.execPath, ["my_probe.ts", ...args], { cwd: project, env: process.env }));
    // The package's bin: `bunx vfio` runs cli.ts (its `#!/usr/bin/env bun` line) from node_modules/.bin.
    const cli = spawnSync(process.execPath, ["x", "vfio", "groups", "--json"], { cwd: project, encoding: "utf8" });
    assert.equal(cli.status, 0, `bun x vfio groups: ${cli.stdout}${cli.stderr}`);
    assert.ok(Array.isArray(JSON.parse(cli.stdout).groups), cli.stdout);
  });
});
