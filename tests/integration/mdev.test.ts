// Mediated devices through real VFIO in the guest, on the kernel's mtty sample (a virtual 16550 UART, 4348:3253):
// discovery, create/remove and their errors, the emulated-IOMMU group type, and a full device round trip (config,
// UART loopback through the I/O BAR, MSI, INTx with unmask) through every path the mode offers: the legacy group on
// a type1 container, and in iommufd mode also the iommufd cdev and the group on /dev/iommu (compat).
// Runs under `deno test` and `bun test`; skipped outside the VM and in its noiommu mode (the rig loads mtty only
// in iommu and iommufd modes).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { after, describe, it } from "node:test";
import { VfioError } from "../../lib/errors.ts";
import { IrqIndex, type IrqSet } from "../../lib/irq.ts";
import { type MdevIommuChoice, openMediatedDevice } from "../../lib/open_mdev.ts";
import type { Region } from "../../lib/region.ts";
import { iommuGroup } from "../../lib/sysfs/iommu_group.ts";
import {
  createMdev,
  isMdevUuid,
  listMdevParentNames,
  listMdevParents,
  listMediatedDevices,
  listMediatedDeviceUuids,
  mdevTypes,
  mediatedDevice,
  removeMdev,
} from "../../lib/sysfs/mdev.ts";
import { pciDevice } from "../../lib/sysfs/pci.ts";
import { guest, skipBecause, skipUnless } from "./guest.ts";

const { mode } = guest;
const skip = skipUnless(
  mode === "noiommu" &&
    "the rig's noiommu mode (a machine without an IOMMU) loads no mtty; mediated devices run in iommu and iommufd modes",
  "mediated devices (mtty)",
);
const isBun = "Bun" in globalThis;
const PARENT = "mtty";
const UUID = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
const LONG = 3000; // ms: an interrupt must arrive well within this, even under TCG
const SHORT = 150; // ms: how long to watch for an interrupt that must NOT arrive

// 16550 registers in BAR0
const RBR_THR = 0, IER = 1, IIR = 2, FCR = 2, MCR = 4, LSR = 5;
const IER_RDI = 0x01, IIR_RDI = 0x04, FCR_ENABLE_AND_CLEAR = 0x07, MCR_LOOP = 0x10, LSR_DR = 0x01;

/** The IOMMU paths of this mode: iommu mode is legacy-only (no /dev/iommu), iommufd mode offers all three. */
const paths: MdevIommuChoice[] = mode === "iommufd" ? ["type1", "iommufd", "iommufd-compat"] : ["type1"];

const available = (type: string): number => mdevTypes(PARENT).find((t) => t.id === type)!.availableInstances;
const openFds = (): number => readdirSync("/proc/self/fd").length;

/** Removes every mediated device left behind (by a failed test), so that the next test starts clean. */
function removeAll(): void {
  for (const u of listMediatedDeviceUuids()) removeMdev(u);
}

function drain(uart: Region): string {
  const bytes: number[] = [];
  while (bytes.length < 32 && (uart.read8(LSR) & LSR_DR) !== 0) bytes.push(uart.read8(RBR_THR));
  return String.fromCharCode(...bytes);
}

/** Writes one byte (IER.RDI set) and counts the interrupts that arrive within `timeoutMs`; drains the FIFO. */
async function rxInterrupt(uart: Region, irqs: IrqSet, byte: number, timeoutMs = LONG): Promise<number> {
  const arrived = irqs.wait(0, { timeoutMs });
  uart.write8(RBR_THR, byte);
  const n = await arrived;
  drain(uart);
  return n;
}

describe("mediated devices (mtty)", { skip }, () => {
  after(removeAll);

  it("discovers the mtty parent and its two types", () => {
    removeAll();
    assert.ok(listMdevParentNames().includes(PARENT), `parents: ${listMdevParentNames()}`);
    const parent = listMdevParents().find((p) => p.name === PARENT)!;
    assert.match(parent.sysfsPath, /\/mtty$/);
    const types = mdevTypes(PARENT);
    assert.deepEqual(types.map((t) => t.id), ["mtty-1", "mtty-2"]);
    const [one, two] = types;
    assert.deepEqual(
      [one.name, one.availableInstances, one.deviceApi, one.instances],
      ["Single port serial", 24, "vfio-pci", []],
    );
    assert.deepEqual([two.name, two.availableInstances, two.deviceApi], ["Dual port serial", 12, "vfio-pci"]);
  });

  it("creates an instance, describes it (emulated-IOMMU group) and removes it", () => {
    removeAll();
    assert.equal(createMdev(PARENT, "mtty-2", { uuid: UUID.toUpperCase() }), UUID);
    try {
      const m = mediatedDevice(UUID);
      assert.deepEqual(
        [m.uuid, m.parent, m.type, m.typeName, m.driver],
        [UUID, PARENT, "mtty-2", "Dual port serial", "mtty"],
      );
      assert.ok(m.iommuGroup !== null && m.vfioDevice !== null, JSON.stringify(m));
      assert.equal(m.vfioDevicePath === `/dev/vfio/devices/${m.vfioDevice}`, existsSync("/dev/vfio/devices"));
      assert.deepEqual(listMediatedDevices().map((x) => x.uuid), [UUID]);
      assert.deepEqual(mdevTypes(PARENT).find((t) => t.id === "mtty-2")!.instances, [UUID]);
      // mtty has 24 ports in all: a dual-port instance takes two from either type
      assert.deepEqual([available("mtty-1"), available("mtty-2")], [22, 11]);
      const g = iommuGroup(m.iommuGroup!);
      assert.deepEqual(
        [g.groupType, g.noiommu, g.name, g.vfioPath, g.vfioPathExists],
        ["emulated-iommu", false, "vfio-noiommu", `/dev/vfio/${m.iommuGroup}`, true],
      );
      assert.deepEqual(g.members, [{ address: UUID, driver: "mtty" }]);
    } finally {
      removeMdev(UUID);
    }
    assert.deepEqual(listMediatedDeviceUuids(), []);
    assert.deepEqual([available("mtty-1"), available("mtty-2")], [24, 12]);
    assert.equal(isMdevUuid(crypto.randomUUID()), true);
  });

  const realGroup = "PCI devices of the same guest report a real IOMMU group";
  it(realGroup, { skip: !skip && skipBecause(!guest.edu && "no edu in the guest", realGroup) }, () => {
    const group = pciDevice(guest.edu!).iommuGroup!;
    assert.equal(iommuGroup(group).groupType, "iommu");
  });

  it("refuses an unknown parent, type or UUID, and a taken UUID, with the known names", () => {
    removeAll();
    assert.throws(
      () => mdevTypes("nope"),
      (e: unknown) => e instanceof VfioError && /parents here: mtty/.test(e.message),
    );
    assert.throws(
      () => createMdev(PARENT, "mtty-9"),
      (e: unknown) =>
        e instanceof VfioError && /no mediated-device type "mtty-9"/.test(e.message) &&
        /mtty-1 \(Single/.test(e.message),
    );
    assert.throws(() => createMdev(PARENT, "mtty-1", { uuid: "not-a-uuid" }), /is not a UUID/);
    assert.throws(() => mediatedDevice(UUID), /there is no mediated device/);
    assert.throws(() => removeMdev(UUID), /there is no mediated device/);
    assert.throws(() => openMediatedDevice(UUID), /there is no mediated device/);
    createMdev(PARENT, "mtty-1", { uuid: UUID });
    try {
      assert.throws(() => createMdev(PARENT, "mtty-1", { uuid: UUID }), /already exists/);
    } finally {
      removeMdev(UUID);
    }
  });

  it("says so when no instance is available, and names what would free one", () => {
    removeAll();
    const made: string[] = [];
    try {
      for (let i = 0; i < 12; i++) made.push(createMdev(PARENT, "mtty-2"));
      assert.deepEqual([available("mtty-1"), available("mtty-2")], [0, 0]);
      assert.throws(
        () => createMdev(PARENT, "mtty-2"),
        (e: unknown) =>
          e instanceof VfioError && /no mtty-2 instance available/.test(e.message) &&
          /12 of this type exist/.test(e.message),
      );
      assert.throws(() => createMdev(PARENT, "mtty-1"), /no mtty-1 instance available/);
    } finally {
      for (const u of made) removeMdev(u);
    }
    assert.equal(available("mtty-2"), 12);
  });

  it("opens by UUID once, and refuses to remove an open device (the kernel would wait forever)", () => {
    removeAll();
    createMdev(PARENT, "mtty-1", { uuid: UUID });
    try {
      const dev = openMediatedDevice(UUID);
      try {
        assert.equal(dev.iommu, mode === "iommufd" ? "iommufd" : "type1"); // auto
        assert.throws(() => openMediatedDevice(UUID), /already open in this process/);
        assert.throws(() => removeMdev(UUID), /is open in this process/);
        assert.throws(() => openMediatedDevice(UUID, { iommu: "noiommu" as MdevIommuChoice }), /not an IOMMU path/);
      } finally {
        dev.close();
      }
      dev.close(); // idempotent
    } finally {
      removeMdev(UUID);
    }
  });

  for (const path of paths) {
    it(`through ${path}: config, UART loopback, MSI and INTx (with unmask) on ${isBun ? "Bun" : "Deno"}`, async () => {
      removeAll();
      createMdev(PARENT, "mtty-2", { uuid: UUID });
      try {
        using dev = openMediatedDevice(UUID, { iommu: path });
        assert.equal(dev.groupType, "emulated-iommu");
        assert.equal(dev.iommu, path === "type1" ? "type1" : "iommufd");
        assert.equal(dev.name, UUID);
        const info = dev.info();
        assert.deepEqual([info.pci, info.numRegions, info.numIrqs], [true, 9, 5]);

        const cfg = dev.config;
        assert.deepEqual([cfg.vendorId, cfg.deviceId], [0x4348, 0x3253]);
        assert.equal(cfg.read32(0x08) >>> 8, 0x070002); // serial controller, 16550
        assert.equal(cfg.read32(0x10) & 1, 1); // BAR0 is an I/O BAR

        const uart = dev.bar(0);
        assert.deepEqual([uart.size, uart.mapped], [8, false]);
        uart.write8(FCR, FCR_ENABLE_AND_CLEAR);
        uart.write8(MCR, MCR_LOOP);
        assert.equal(uart.read8(LSR) & LSR_DR, 0);
        for (const c of "vfio-ts") uart.write8(RBR_THR, c.charCodeAt(0));
        assert.equal(uart.read8(LSR) & LSR_DR, LSR_DR);
        assert.equal(drain(uart), "vfio-ts");
        // the second port of mtty-2 is BAR1, with its own FIFO
        const port2 = dev.bar(1);
        port2.write8(FCR, FCR_ENABLE_AND_CLEAR);
        port2.write8(RBR_THR, 0x58);
        assert.deepEqual([uart.read8(LSR) & LSR_DR, port2.read8(LSR) & LSR_DR, port2.read8(RBR_THR)], [0, 1, 0x58]);

        uart.write8(IER, IER_RDI);
        assert.deepEqual(
          [dev.irqInfo(IrqIndex.INTX).count, dev.irqInfo(IrqIndex.MSI).count, dev.irqInfo(IrqIndex.INTX).automasked],
          [1, 1, true],
        );
        {
          using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
          const arrived = msi.wait(0, { timeoutMs: LONG });
          uart.write8(RBR_THR, 0x61);
          assert.equal(await arrived, 1);
          assert.equal(uart.read8(IIR) & 0x0f, IIR_RDI);
          drain(uart);
          assert.equal(await rxInterrupt(uart, msi, 0x62), 1);
          msi.trigger(0); // software trigger (SET_IRQS DATA_NONE)
          assert.equal(await msi.wait(0, { timeoutMs: LONG }), 1);
        }
        {
          using intx = dev.enableIrqs(IrqIndex.INTX);
          assert.equal(await rxInterrupt(uart, intx, 0x63), 1);
          assert.equal(await rxInterrupt(uart, intx, 0x64, SHORT), 0); // automasked
          intx.unmask(0);
          assert.equal(await rxInterrupt(uart, intx, 0x65), 1);
        }
        uart.write8(IER, 0);
      } finally {
        removeMdev(UUID);
      }
    });
  }

  // after the tests above, so that the runtime's own lazily opened fds (first await on an fd) are already there
  it("leaves no fd behind on any path (device, group, container or iommufd, eventfds)", async () => {
    removeAll();
    createMdev(PARENT, "mtty-1", { uuid: UUID });
    try {
      const before = openFds();
      for (const path of paths) {
        using dev = openMediatedDevice(UUID, { iommu: path });
        using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
        msi.trigger(0);
        assert.equal(await msi.wait(0, { timeoutMs: LONG }), 1);
      }
      assert.equal(openFds(), before);
    } finally {
      removeMdev(UUID);
    }
  });

  it("vfio mdev types|create|list|remove, and mediated devices in status and groups", { timeout: 600_000 }, () => {
    removeAll();
    const cli = (...args: string[]): { code: number | null; out: string; err: string } => {
      const argv = isBun ? ["cli/vfio.ts", ...args] : ["run", "-A", "--no-check", "cli/vfio.ts", ...args];
      const r = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 120_000 });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const json = (...args: string[]): Record<string, unknown> => {
      const r = cli(...args, "--json");
      assert.equal(r.code, 0, r.err);
      return JSON.parse(r.out);
    };
    const parents = json("mdev", "types").parents as { name: string; types: { id: string }[] }[];
    assert.deepEqual(parents.find((p) => p.name === PARENT)!.types.map((t) => t.id), ["mtty-1", "mtty-2"]);
    assert.deepEqual(json("mdev", "create", PARENT, "mtty-2", "--uuid", UUID), {
      uuid: UUID,
      parent: PARENT,
      type: "mtty-2",
    });
    try {
      const listed = cli("mdev", "list");
      assert.match(listed.out, new RegExp(`${UUID}  mtty mtty-2 \\(Dual port serial\\)`));
      assert.match(listed.out, /driver mtty {2}group \d+ \(emulated IOMMU\)/);
      const { mediatedDevices } = json("status") as { mediatedDevices: { uuid: string; groupType: string }[] };
      assert.deepEqual(mediatedDevices.map((m) => [m.uuid, m.groupType]), [[UUID, "emulated-iommu"]]);
      const group = mediatedDevice(UUID).iommuGroup;
      const { groups } = json("groups") as { groups: { number: number; groupType: string; viable: boolean }[] };
      const g = groups.find((x) => x.number === group)!;
      assert.deepEqual([g.groupType, g.viable], ["emulated-iommu", true]);
      const bad = cli("mdev", "create", PARENT, "mtty-7");
      assert.equal(bad.code, 1);
      assert.match(bad.err, /^vfio: mtty supports no mediated-device type "mtty-7" \(its types: mtty-1/);
    } finally {
      const r = cli("mdev", "remove", UUID);
      assert.deepEqual([r.code, r.out.trim()], [0, `removed ${UUID}`], r.err);
    }
    assert.deepEqual(listMediatedDeviceUuids(), []);
  });

  it("examples/mtty.ts passes every check", { timeout: 120_000 }, () => {
    removeAll();
    const argv = isBun ? ["examples/mtty.ts"] : ["run", "-A", "--no-check", "examples/mtty.ts"];
    const r = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 120_000 });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.match(out, /all checks passed/);
    assert.deepEqual(listMediatedDeviceUuids(), [], "the example removed its instance");
  });
});
