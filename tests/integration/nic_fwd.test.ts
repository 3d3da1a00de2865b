// The ixy chain across real emulated wires: pktgen -> [hub 0] -> fwd -> [hub 1] -> receiver, and back the other way,
// every frame checked once, in order, intact. Needs two NICs on each of two hubs, so it runs as its own rig:
//   deno run -A tests/vm/test_vm.ts --filter fwd --devices virtio-net@0,e1000e@0,virtio-net@1,e1000e@1
// (tools/test.sh does). With the default devices it skips, and says so (SKIP: …).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import process from "node:process";
import { describe, it } from "node:test";
import { assertHighDma, guest, skipUnless } from "./guest.ts";

const isBun = "Bun" in globalThis;
const noiommu = guest.noiommuFlag;
const vfio = [...guest.devices.e1000e, ...guest.devices.virtioNet];
// hub 0: gen, fwdA; hub 1: fwdB, recv (only NICs bound to vfio-pci count)
const hubs = guest.hubs.map((h) => h.filter((a) => vfio.includes(a)));
const [gen, fwdA] = hubs[0] ?? [];
const [fwdB, recv] = hubs[1] ?? [];
const ready = hubs.length === 2 && hubs.every((h) => h.length === 2);
const COUNT = 2000;

const argv = (script: string, ...args: string[]): string[] => {
  const all = [script, ...args, ...noiommu, "--hugepages", "8"];
  return isBun ? all : ["run", "-A", "--no-check", ...all];
};

function pktgen(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, argv("examples/pktgen.ts", ...args), { encoding: "utf8", timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const skip = skipUnless(
  !ready && "needs two vfio NICs on each of hubs 0 and 1 (--devices virtio-net@0,e1000e@0,virtio-net@1,e1000e@1)",
  "examples/fwd.ts between two hubs",
);

describe("examples/fwd.ts between two hubs", { skip }, () => {
  it(
    `pktgen -> fwd -> receiver and back: ${COUNT} frames each way, once, in order, intact`,
    { timeout: 300_000 },
    async () => {
      const fwd = spawn(
        process.execPath,
        argv("examples/fwd.ts", fwdA, fwdB, "--count", `${2 * COUNT}`, "--timeout", "200"),
      );
      let out = "";
      fwd.stdout.setEncoding("utf8").on("data", (d: string) => out += d);
      fwd.stderr.setEncoding("utf8").on("data", (d: string) => out += d);
      const exited = new Promise<number | null>((resolve) => fwd.on("close", (code) => resolve(code)));
      try {
        const t0 = Date.now();
        while (!/^forwarding /m.test(out)) {
          if (fwd.exitCode !== null || Date.now() - t0 > 60_000) assert.fail(`fwd did not start:\n${out}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        const there = pktgen(gen, "--verify", recv, "--count", `${COUNT}`, "--size", "60");
        console.log(there.out);
        assert.equal(there.status, 0, there.out);
        assert.match(there.out, new RegExp(`ok {3}${COUNT}/${COUNT} frames arrived once, in order, intact`));
        assertHighDma(there.out, /buffers at bus address (0x[0-9a-f]+)/);
        const back = pktgen(recv, "--verify", gen, "--count", `${COUNT}`, "--size", "1000", "--batch", "64");
        console.log(back.out);
        assert.equal(back.status, 0, back.out);
        assert.match(back.out, new RegExp(`ok {3}${COUNT}/${COUNT} frames arrived once, in order, intact`));
        const code = await exited;
        console.log(out);
        assert.equal(code, 0, out);
        assert.match(out, new RegExp(`forwarded ${COUNT} a->b and ${COUNT} b->a frames`));
        assert.match(out, /ok {3}dropped 0 frames/);
        assertHighDma(out, /buffers at bus address (0x[0-9a-f]+)/);
      } finally {
        if (fwd.exitCode === null) fwd.kill();
      }
    },
  );
});
