// The modern (virtio 1.x) virtio-net driver, examples/nic/virtio_modern.ts, on the rig's 1af4:1041 device: IOVAs
// through the emulated IOMMU (VIRTIO_F_ACCESS_PLATFORM) in iommu and iommufd modes, physical addresses in no-IOMMU
// mode; examples/pktgen.ts both ways against an e1000e on the same hub; interrupt-driven receive (waitRx on the
// receive queue's MSI-X vector); and, when the rig puts a kernel-driven NIC on the hub
// (--devices e1000e@0,virtio-net-modern@0,e1000e@0:kernel), the kernel as the peer nobody here wrote.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import process from "node:process";
import { describe, it } from "node:test";
import type { Nic, Packet } from "../../examples/nic/nic.ts";
import { openNic, waitForLink } from "../../examples/nic/open.ts";
import { VirtioNetModern } from "../../examples/nic/virtio_modern.ts";
import { guest, skipUnless } from "./guest.ts";
import { findKernelPeer, kernelToKernel, kernelToVfio, linkUp, vfioToKernel } from "./nic_peer.ts";

const isBun = "Bun" in globalThis;
const noiommu = guest.mode === "noiommu";
const modern = guest.devices.virtioNetModern[0];
const hub = guest.hubs.find((h) => h.includes(modern));
const e = hub?.find((a) => guest.devices.e1000e.includes(a));
const LONG = { timeout: 240_000 }; // TCG

function pktgen(...args: string[]): { status: number | null; out: string } {
  const script = ["examples/pktgen.ts", ...args, ...guest.noiommuFlag];
  const argv = isBun ? script : ["run", "-A", "--no-check", ...script];
  const r = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 180_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

async function open(address: string): Promise<Nic> {
  const nic = openNic(address, { noiommu, poolSize: 1024 });
  try {
    await waitForLink(nic);
    return nic;
  } catch (err) {
    nic.close();
    throw err;
  }
}

const ACCESS_PLATFORM = 1n << 33n, VERSION_1 = 1n << 32n;

describe("modern virtio-net (examples/nic/virtio_modern.ts)", {
  skip: skipUnless(!modern && "needs a virtio-net-modern", "modern virtio-net"),
}, () => {
  it(
    "negotiates VERSION_1, and ACCESS_PLATFORM exactly when there is an IOMMU; hands out IOVAs or physical addresses",
    LONG,
    async () => {
      using nic = await open(modern);
      assert.ok(nic instanceof VirtioNetModern, `openNic picks the modern driver for 1af4:1041 (got ${nic.driver})`);
      assert.equal(nic.features & VERSION_1, VERSION_1);
      assert.equal(nic.features & ACCESS_PLATFORM, noiommu ? 0n : ACCESS_PLATFORM);
      assert.equal(nic.addressing, noiommu ? "physical (no IOMMU)" : "iova");
      assert.match(nic.mac, /^52:54:00:ab:/);
      assert.equal(nic.queues, 1);
      assert.throws(() => nic.rxBatch([], 1, 1), /one queue pair/);
    },
  );

  it("waitRx times out when nothing arrives and wakes for a frame sent meanwhile", {
    ...LONG,
    skip: !e && "needs an e1000e on the same hub",
  }, async () => {
    const rx = await open(modern);
    const tx = await open(e!);
    try {
      const bufs: Packet[] = new Array(32);
      for (let n; (n = rx.rxBatch(bufs, 32)) > 0;) for (let i = 0; i < n; i++) bufs[i].free();
      let t0 = performance.now();
      assert.equal(await rx.waitRx!(0, 300), false, "nothing arrived");
      assert.ok(performance.now() - t0 >= 250, "waited for the timeout");
      const send = setTimeout(() => {
        const p = tx.pool.alloc()!;
        p.data.fill(0xee, 0, 60);
        p.data.set(Array.from(rx.mac.split(":"), (h) => parseInt(h, 16)));
        p.length = 60;
        tx.txBatch([p], 1);
      }, 200);
      t0 = performance.now();
      const woke = await rx.waitRx!(0, 20_000);
      clearTimeout(send);
      assert.equal(woke, true, "the receive queue's MSI-X vector fired");
      assert.ok(performance.now() - t0 < 19_000);
      let n = 0;
      for (let i = 0; i < 100 && n === 0; i++) n = rx.rxBatch(bufs, 32);
      assert.equal(n, 1, "the frame is there");
      assert.equal(bufs[0].length, 60);
      bufs[0].free();
    } finally {
      rx.stop();
      tx.stop();
      rx.close();
      tx.close();
    }
  });

  it("pktgen: e1000e -> modern virtio-net, 3000 frames of 60 bytes arrive once, in order, intact", {
    ...LONG,
    skip: !e && "needs an e1000e on the same hub",
  }, () => {
    const r = pktgen(e!, "--verify", modern, "--count", "3000", "--size", "60");
    console.log(r.out);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /ok {3}3000\/3000 frames arrived once, in order, intact/);
    assert.match(r.out, /ok {3}e1000e counted 3000 frames sent/);
  });

  it("pktgen: modern virtio-net -> e1000e, 2000 frames of 1514 bytes in batches of 64", {
    ...LONG,
    skip: !e && "needs an e1000e on the same hub",
  }, () => {
    const r = pktgen(modern, "--verify", e!, "--count", "2000", "--size", "1514", "--batch", "64");
    console.log(r.out);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /ok {3}2000\/2000 frames arrived once, in order, intact/);
    assert.match(r.out, /ok {3}e1000e counted 2000 frames received/); // the 82574's GPRC
  });
});

// The harness is wt-igb's nic_peer.ts (random sizes and payloads, CRC-checked, paced): here for modern virtio-net,
// polled and interrupt-driven. Needs --devices e1000e@0,virtio-net-modern@0,e1000e@0:kernel (or any kernel NIC on
// the modern virtio-net's hub).
const peer = guest.inVm && modern ? findKernelPeer(modern) : null;

describe("modern virtio-net with the guest kernel as peer (AF_PACKET, random sizes and payloads)", {
  skip: skipUnless(!peer && "needs a kernel-driven NIC on the modern virtio-net's hub", "kernel peer"),
}, () => {
  const COUNT = 400, RATE = 200;

  for (const interrupts of [false, true]) {
    it(
      `kernel -> modern virtio-net (${
        interrupts ? "interrupts: waitRx between empty rounds" : "polling"
      }): ${COUNT} frames once, intact`,
      LONG,
      async () => {
        await linkUp(peer!);
        using nic = await open(modern);
        const got = await kernelToVfio(nic, peer!, { count: COUNT, rate: RATE, interrupts });
        console.log(`kernel -> virtio-net-modern: ${JSON.stringify({ ...got, senderOut: got.senderOut.trim() })}`);
        assert.equal(got.senderCode, 0, `the kernel's sender failed: ${got.senderOut}`);
        assert.equal(got.damaged, 0, "damaged frames");
        assert.equal(got.duplicates, 0, "duplicate frames");
        assert.equal(got.received, COUNT, `received ${got.received} of ${COUNT}`);
      },
    );
  }

  it(`modern virtio-net -> kernel: the kernel counts ${COUNT} frames once, intact`, LONG, async () => {
    await linkUp(peer!);
    using nic = await open(modern);
    const sent = await vfioToKernel(nic, peer!, { count: COUNT, rate: RATE });
    console.log(`virtio-net-modern -> kernel: ${JSON.stringify(sent.kernel)}`);
    assert.equal(sent.receiverCode, 0, `the kernel's receiver failed: ${sent.receiverOut}`);
    assert.ok(sent.kernel, `no summary from the kernel's receiver: ${sent.receiverOut}`);
    assert.equal(sent.kernel.damaged, 0, "damaged frames");
    assert.equal(sent.kernel.duplicates, 0, "duplicate frames");
    assert.equal(sent.kernel.received, COUNT, `the kernel counted ${sent.kernel.received} of ${COUNT}`);
    assert.equal(nic.stats().txPackets, COUNT);
  });
});

// examples/fwd.ts between two drivers of different families, igb and modern virtio-net, each on its own hub with a
// kernel NIC: kernel A -> igb -> fwd -> modern virtio-net -> kernel B, and back. Needs
// --devices igb@0,e1000e@0:kernel,virtio-net-modern@1,e1000e@1:kernel.
const igb = guest.inVm ? (process.env.VFIO_TS_IGB ?? "").split(",").filter(Boolean)[0] : undefined;
const peerA = igb ? findKernelPeer(igb) : null;
const fwdModern = guest.devices.virtioNetModern.find((m) => !guest.hubs.find((h) => h.includes(m))?.includes(igb!));
const peerB = fwdModern ? findKernelPeer(fwdModern) : null;

describe("examples/fwd.ts between igb and modern virtio-net, kernel NICs at both ends", {
  skip: skipUnless(
    !(peerA && peerB) && "needs igb and virtio-net-modern on two hubs, each with a kernel NIC",
    "fwd igb <-> modern virtio-net",
  ),
}, () => {
  it("400 random frames each way arrive once, intact, at the far kernel", LONG, async () => {
    await linkUp(peerA!);
    await linkUp(peerB!);
    const script = ["examples/fwd.ts", igb!, fwdModern!, ...guest.noiommuFlag];
    const fwd = spawn(process.execPath, isBun ? script : ["run", "-A", "--no-check", ...script], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const started = new Promise<void>((resolve, reject) => {
      fwd.stdout!.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        if (out.includes("forwarding")) resolve();
      });
      fwd.stderr!.setEncoding("utf8").on("data", (d: string) => out += d);
      fwd.on("close", (code) => reject(new Error(`fwd.ts exited ${code} before forwarding: ${out}`)));
    });
    const exited = new Promise<void>((r) => fwd.on("close", () => r()));
    try {
      await started;
      for (const [from, to] of [[peerA!, peerB!], [peerB!, peerA!]]) {
        const r = await kernelToKernel(from, to, { count: 400, rate: 200 });
        console.log(`${from.iface} -> fwd -> ${to.iface}: ${JSON.stringify(r.kernel)}`);
        assert.equal(r.senderCode, 0, r.out);
        assert.ok(r.kernel, `no summary from the receiving kernel: ${r.out}`);
        assert.equal(r.kernel.damaged, 0, "damaged frames");
        assert.equal(r.kernel.duplicates, 0, "duplicate frames");
        assert.equal(r.kernel.received, 400, `the far kernel counted ${r.kernel.received} of 400`);
      }
    } finally {
      fwd.kill("SIGTERM");
      await exited;
      console.log(out);
    }
  });
});
