// examples/pktgen.ts as users run it (a child process of the same runtime) on the rig's default NICs: an e1000e and
// a legacy virtio-net on one QEMU hub. Frames go each way and are checked once, in order, intact; the device's own
// counters (e1000e) must agree. The 4-port forwarder chain is nic_fwd.test.ts (its own rig, see tools/test.sh).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { describe, it } from "node:test";
import { assertHighDma, guest, skipUnless } from "./guest.ts";

const isBun = "Bun" in globalThis;
const noiommu = guest.noiommuFlag;
const { e1000e, virtioNet: virtio } = guest.devices;
// a pair on one hub, one of each kind
const hub = guest.hubs.find((h) => h.some((a) => e1000e.includes(a)) && h.some((a) => virtio.includes(a)));
const e = hub?.find((a) => e1000e.includes(a));
const v = hub?.find((a) => virtio.includes(a));

function pktgen(...args: string[]): { status: number | null; out: string } {
  const script = ["examples/pktgen.ts", ...args, ...noiommu, "--hugepages", "8"];
  const argv = isBun ? script : ["run", "-A", "--no-check", ...script];
  const r = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const LONG = { timeout: 180_000 }; // child processes under TCG outlast bun test's 5 s default
const skip = skipUnless(!hub && "needs an e1000e and a virtio-net on one hub", "examples/pktgen.ts across one hub");
const BUS = /buffers at bus address (0x[0-9a-f]+)/;

describe("examples/pktgen.ts across one hub", { skip }, () => {
  it("e1000e -> virtio-net: 3000 frames of 60 bytes arrive once, in order, intact", LONG, () => {
    const r = pktgen(e!, "--verify", v!, "--count", "3000", "--size", "60");
    console.log(r.out);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /ok {3}3000\/3000 frames arrived once, in order, intact/);
    assert.match(r.out, /ok {3}e1000e counted 3000 frames sent/); // the 82574's GPTC register
    assert.match(r.out, /all checks passed/);
    assertHighDma(r.out, BUS);
  });

  it("virtio-net -> e1000e: 2000 frames of 1514 bytes, batches of 64", LONG, () => {
    const r = pktgen(v!, "--verify", e!, "--count", "2000", "--size", "1514", "--batch", "64");
    console.log(r.out);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /ok {3}2000\/2000 frames arrived once, in order, intact/);
    assert.match(r.out, /ok {3}e1000e counted 2000 frames received/); // GPRC
    assertHighDma(r.out, BUS);
  });

  it("sends without a receiver and prints pps; rejects bad input with exit 1", LONG, () => {
    const r = pktgen(e!, "--count", "500", "--batch", "8");
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /sent 500 frames in [\d.]+ s: \d+ pps/);
    const bad = pktgen(e!, "--size", "20");
    assert.equal(bad.status, 1, bad.out);
    assert.match(bad.out, /--size 20 is out of range/);
  });
});
