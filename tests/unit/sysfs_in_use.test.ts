// Telling whether a device is in use through its kernel driver (lib/sysfs/in_use.ts) and naming it from pci.ids
// (lib/sysfs/pci_ids.ts), on a fake sysfs/procfs tree and a small pci.ids text. The kernel's side (an interface
// really going up) is checked in the guest by tests/integration/cli.test.ts.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { blockDevices, deviceUsers, networkInterfaces } from "../../lib/sysfs/in_use.ts";
import { loadPciIds, PciIds } from "../../lib/sysfs/pci_ids.ts";

let root = "";
const file = (path: string, text: string): void => {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
};
const link = (path: string, target: string): void => {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  symlinkSync(target, join(root, path));
};

const NIC = "/sys/devices/pci0000:00/0000:00:05.0";
const NVME = "/sys/devices/pci0000:00/0000:00:04.0";

describe("deviceUsers on a fake tree", () => {
  before(() => {
    root = mkdtempSync(join(tmpdir(), "vfio-ts-in-use-"));
    for (
      const [addr, dir] of [["0000:00:05.0", NIC], ["0000:00:04.0", NVME], [
        "0000:00:06.0",
        "/sys/devices/pci0000:00/0000:00:06.0",
      ]]
    ) {
      file(`${dir}/vendor`, "0x8086\n");
      link(`/sys/bus/pci/devices/${addr}`, `../../../..${dir}`);
    }
    // NIC: interface ens5, administratively up (IFF_UP) though the link is still down
    mkdirSync(join(root, NIC, "net/ens5"), { recursive: true });
    link("/sys/class/net/ens5", `../../devices/pci0000:00/0000:00:05.0/net/ens5`);
    file(`${NIC}/net/ens5/flags`, "0x1003\n");
    file(`${NIC}/net/ens5/operstate`, "down\n");
    // NVMe: namespace with two partitions, one mounted, one swap; a second namespace held by dm
    for (const b of ["nvme0n1", "nvme0n1/nvme0n1p1", "nvme0n1/nvme0n1p2", "nvme0n2"]) {
      mkdirSync(join(root, NVME, "nvme/nvme0", b), { recursive: true });
      link(`/sys/class/block/${b.split("/").pop()}`, `../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/${b}`);
    }
    mkdirSync(join(root, NVME, "nvme/nvme0/nvme0n2/holders/dm-0"), { recursive: true });
    mkdirSync(join(root, NVME, "nvme/nvme0/nvme0n1/holders"), { recursive: true });
    file("/proc/mounts", "sysfs /sys sysfs rw 0 0\n/dev/nvme0n1p1 /my\\040data ext4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\n");
    file("/proc/swaps", "Filename Type Size Used Priority\n/dev/nvme0n1p2 partition 1024 0 -2\n");
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("finds the interface and the block devices below a device", () => {
    assert.deepEqual(networkInterfaces("00:05.0", { root }), ["ens5"]);
    assert.deepEqual(blockDevices("00:04.0", { root }), ["nvme0n1", "nvme0n1p1", "nvme0n1p2", "nvme0n2"]);
    assert.deepEqual(blockDevices("00:05.0", { root }), []);
  });

  it("reports an interface that is up by its flags, whatever operstate says", () => {
    assert.deepEqual(deviceUsers("00:05.0", { root }).map((u) => u.description), ["network interface ens5 is up"]);
    file(`${NIC}/net/ens5/flags`, "0x1002\n");
    assert.deepEqual(deviceUsers("00:05.0", { root }), []);
    file(`${NIC}/net/ens5/operstate`, "up\n");
    assert.equal(deviceUsers("00:05.0", { root })[0]?.kind, "interface-up");
  });

  it("reports mounts (unescaped), swap and holders; nothing for an unused device", () => {
    const uses = deviceUsers("00:04.0", { root });
    assert.deepEqual(uses.map((u) => [u.kind, u.name]), [
      ["mounted", "nvme0n1p1"],
      ["swap", "nvme0n1p2"],
      ["held", "nvme0n2"],
    ]);
    assert.equal(uses[0].description, "nvme0n1p1 is mounted on /my data");
    assert.deepEqual(deviceUsers("00:06.0", { root }), []);
  });
});

const IDS = `# comment
8086  Intel Corporation
\t10d3  82574L Gigabit Network Connection
\t\t8086 a01f  Gigabit CT Desktop Adapter
1b36  Red Hat, Inc.
\t0010  QEMU NVM Express Controller
C 01  Mass storage controller
\t08  Non-Volatile memory controller
\t\t02  NVM Express
C 02  Network controller
\t00  Ethernet controller
C ff  Unassigned class
`;

describe("PciIds", () => {
  it("names vendors, devices, classes and programming interfaces", () => {
    const ids = new PciIds(IDS, "test");
    assert.equal(ids.vendorName(0x8086), "Intel Corporation");
    assert.equal(ids.deviceName(0x8086, 0x10d3), "82574L Gigabit Network Connection");
    assert.equal(ids.deviceName(0x1b36, 0x0010), "QEMU NVM Express Controller");
    assert.equal(ids.deviceName(0x1b36, 0x10d3), null);
    assert.equal(ids.vendorName(0x1234), null);
    assert.equal(ids.className(0x020000), "Ethernet controller");
    assert.equal(ids.className(0x010802), "Non-Volatile memory controller");
    assert.equal(ids.progIfName(0x010802), "NVM Express");
    assert.equal(ids.className(0x028000), "Network controller", "unknown subclass: the base class");
    assert.equal(ids.className(0x120000), null);
  });

  it("a missing file gives an empty database, not an error", () => {
    const ids = loadPciIds({ path: "/nonexistent/pci.ids" });
    assert.equal(ids.source, null);
    assert.equal(ids.vendorName(0x8086), null);
  });
});
