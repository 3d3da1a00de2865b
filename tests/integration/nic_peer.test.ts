// Peer checks (issue 13 item 5): each vfio-ts NIC driver against the guest kernel's own driver on another port of
// the same QEMU hub, through AF_PACKET (tests/integration/nic_peer.ts). Random sizes 60..1514 and random payloads
// both ways, every frame once and intact, paced; igb with 2 queue pairs must receive on both queues and sends from
// both. Needs a kernel NIC beside each vfio NIC, so it runs as its own rig:
//   deno run -A tests/vm/test_vm.ts --filter nic_peer --devices igb@0,e1000e@0:kernel,e1000e@1,igb@1:kernel
// (tools/test.sh does). Without such pairs it skips, and says so (SKIP: …).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import process from "node:process";
import { describe, it } from "node:test";
import { openNic, waitForLink } from "../../examples/nic/open.ts";
import { guest, skipUnless } from "./guest.ts";
import { findKernelPeer, kernelToVfio, linkUp, PYTHON, vfioToKernel } from "./nic_peer.ts";

const COUNT = 400;
const RATE = 200; // frames per second: paced, so nothing may be lost
const igb = (process.env.VFIO_TS_IGB ?? "").split(",").filter(Boolean);
const targets = [
  ...igb.map((address) => ({ address, kind: "igb", queues: 2 })),
  ...guest.devices.e1000e.map((address) => ({ address, kind: "e1000e", queues: 1 })),
].map((t) => ({ ...t, peer: guest.inVm ? findKernelPeer(t.address) : null })).filter((t) => t.peer);

const NEEDS = "needs a vfio NIC with a kernel NIC on its hub (--devices igb@0,e1000e@0:kernel,e1000e@1,igb@1:kernel)";
const reason = !existsSync(PYTHON) ? `no ${PYTHON} in the guest` : targets.length === 0 ? NEEDS : false;
const skip = skipUnless(reason, "NIC peer checks against the kernel's drivers");

describe("NIC peer checks against the kernel's drivers", { skip }, () => {
  for (const t of targets) {
    const peer = t.peer!;
    it(
      `${t.kind} ${t.address} (${t.queues} queue pair(s)) <-> kernel ${peer.iface} (${peer.address}): ` +
        `${COUNT} random frames each way, once, intact`,
      { timeout: 240_000 },
      async () => {
        await linkUp(peer);
        using nic = openNic(t.address, { noiommu: guest.mode === "noiommu", queues: t.queues });
        await waitForLink(nic);
        assert.equal(nic.queues, t.queues, "queue pairs set up");

        // interrupt-driven receive where the driver has it: the kernel is a sender in another process, so the
        // driver really sleeps between frames and each wake-up is its MSI-X/MSI vector firing
        const interrupts = nic.waitRx !== undefined;
        const got = await kernelToVfio(nic, peer, { count: COUNT, rate: RATE, interrupts });
        console.log(`kernel -> ${t.kind}: ${JSON.stringify({ ...got, senderOut: got.senderOut.trim() })}`);
        assert.equal(got.senderCode, 0, `the kernel's sender failed: ${got.senderOut}`);
        assert.equal(got.damaged, 0, "damaged frames");
        assert.equal(got.duplicates, 0, "duplicate frames");
        assert.equal(got.received, COUNT, `received ${got.received} of ${COUNT}`);
        for (let q = 0; q < t.queues; q++) assert.ok(got.perQueue[q] > 0, `receive queue ${q} got no frame`);
        if (interrupts) assert.ok(got.wakeups > 0, "no receive interrupt woke the driver");

        const sent = await vfioToKernel(nic, peer, { count: COUNT, rate: RATE });
        console.log(`${t.kind} -> kernel: ${JSON.stringify(sent.kernel)}, per transmit queue ${sent.perQueue}`);
        assert.equal(sent.receiverCode, 0, `the kernel's receiver failed: ${sent.receiverOut}`);
        assert.ok(sent.kernel, `no summary from the kernel's receiver: ${sent.receiverOut}`);
        assert.equal(sent.kernel.damaged, 0, "damaged frames");
        assert.equal(sent.kernel.duplicates, 0, "duplicate frames");
        assert.equal(sent.kernel.received, COUNT, `the kernel counted ${sent.kernel.received} of ${COUNT}`);
        for (let q = 0; q < t.queues; q++) assert.ok(sent.perQueue[q] > 0, `transmit queue ${q} sent no frame`);
        nic.stop();
      },
    );
  }
});
