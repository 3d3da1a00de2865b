// Telling whether a device is in use through its kernel driver (lib/sysfs/in_use.ts and the files it builds on:
// device_tree.ts, net_use.ts, proc_scan.ts) and naming it from pci.ids (lib/sysfs/pci_ids.ts), on a fake
// sysfs/procfs/dev tree shaped like the kernel's: virtio-net's interface two levels down, an NVMe controller with
// partitions, an LVM holder and a raw opener, an NVMe multipath head under /sys/devices/virtual/nvme-subsystem,
// mounts seen only in another mount namespace, a mount whose source is a /dev/disk/by-uuid symlink, the default
// route. The kernel's side is checked in the guest by tests/integration/in_use.test.ts.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { blockDevices, deviceUsers, networkInterfaces, SystemScan } from "../../lib/sysfs/in_use.ts";
import { readNetState } from "../../lib/sysfs/net_use.ts";
import { loadPciIds, PciIds } from "../../lib/sysfs/pci_ids.ts";

let root = "";
const file = (path: string, text: string): void => {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
};
/** A symlink at `path` to the absolute (fake-root) `target`, written relative as the kernel does. */
const link = (path: string, target: string): void => {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  symlinkSync(target.startsWith("/") ? relative(dirname(path), target) : target, join(root, path));
};
/** A symlink whose text is exactly `text` (procfs's `fd/N` and `root` links read as absolute paths). */
const rawLink = (path: string, text: string): void => {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  symlinkSync(text, join(root, path));
};
/** A kernel device directory: its `subsystem` link, and `dev`/`uevent` for one with a node. */
const kdev = (dir: string, subsystem: string, dev?: string, devName?: string, driver?: string): void => {
  mkdirSync(join(root, dir), { recursive: true });
  link(`${dir}/subsystem`, subsystem);
  if (dev !== undefined) {
    file(`${dir}/dev`, `${dev}\n`);
    file(`${dir}/uevent`, `MAJOR=${dev.split(":")[0]}\nMINOR=${dev.split(":")[1]}\nDEVNAME=${devName}\n`);
    file(`/dev/${devName}`, ""); // the node (a plain file here: no mknod in a test)
  }
  if (driver !== undefined) link(`${dir}/driver`, `/sys/bus/virtio/drivers/${driver}`);
  if (subsystem === "/sys/class/block") link(`/sys/class/block/${dir.split("/").pop()}`, dir);
  if (subsystem === "/sys/class/net") link(`/sys/class/net/${dir.split("/").pop()}`, dir);
};
const pci = (slot: string): string => {
  const dir = `/sys/devices/pci0000:00/0000:00:${slot}`;
  file(`${dir}/vendor`, "0x1af4\n");
  link(`${dir}/subsystem`, "/sys/bus/pci");
  link(`/sys/bus/pci/devices/0000:00:${slot}`, dir);
  return dir;
};
const BLOCK = "/sys/class/block";
const proc = (pid: number, comm: string, ns: string, mountinfo?: string): void => {
  file(`/proc/${pid}/comm`, `${comm}\n`);
  link(`/proc/${pid}/ns/mnt`, ns);
  rawLink(`/proc/${pid}/root`, "/");
  if (mountinfo !== undefined) file(`/proc/${pid}/mountinfo`, mountinfo);
};

describe("deviceUsers on a fake tree", () => {
  before(() => {
    root = mkdtempSync(join(tmpdir(), "vfio-ts-in-use-"));
    // 00:03.0 virtio-net: the interface is at …/virtio2/net/eth0, up, with addresses and the default route
    const vnet = pci("03.0");
    kdev(`${vnet}/virtio2`, "/sys/bus/virtio", undefined, undefined, "virtio_net");
    kdev(`${vnet}/virtio2/net/eth0`, "/sys/class/net");
    file(`${vnet}/virtio2/net/eth0/flags`, "0x1003\n");
    file(
      "/proc/net/route",
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
    );
    file(
      "/proc/net/fib_trie",
      "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n" +
        "     +-- 127.0.0.0/8 2 0 2\n           |-- 127.0.0.1\n              /32 host LOCAL\n" +
        "     +-- 192.0.2.0/24 2 0 2\n           |-- 192.0.2.0\n              /24 link UNICAST\n" +
        "           |-- 192.0.2.2\n              /32 host LOCAL\n",
    );
    file("/proc/net/if_inet6", "fd000000000000000000000000000002 02 40 00 80     eth0\n");
    file(
      "/proc/net/ipv6_route",
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 " +
        "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n",
    );
    // 00:05.0: interface ens5 directly under the device, administratively up (IFF_UP), link still down
    const nic = pci("05.0");
    kdev(`${nic}/net/ens5`, "/sys/class/net");
    file(`${nic}/net/ens5/flags`, "0x1003\n");
    file(`${nic}/net/ens5/operstate`, "down\n");
    // 00:04.0 NVMe: nvme0n1 with a partition mounted through a by-uuid symlink (btrfs: anonymous st_dev 0:45) and
    // one holding swap; nvme0n2 under LVM (dm-0), mounted only in another mount namespace; nvme0n3 opened raw
    const nvme = pci("04.0");
    const ctrl = `${nvme}/nvme/nvme0`;
    kdev(ctrl, "/sys/class/nvme", "240:0", "nvme0");
    kdev(`${ctrl}/nvme0n1`, BLOCK, "259:0", "nvme0n1");
    kdev(`${ctrl}/nvme0n1/nvme0n1p1`, BLOCK, "259:1", "nvme0n1p1");
    kdev(`${ctrl}/nvme0n1/nvme0n1p2`, BLOCK, "259:2", "nvme0n1p2");
    kdev(`${ctrl}/nvme0n2`, BLOCK, "259:3", "nvme0n2");
    kdev(`${ctrl}/nvme0n3`, BLOCK, "259:4", "nvme0n3");
    kdev(`${ctrl}/ng0n3`, "/sys/class/nvme-generic", "241:2", "ng0n3");
    const dm = "/sys/devices/virtual/block/dm-0";
    kdev(dm, BLOCK, "253:0", "dm-0");
    file(`${dm}/dm/name`, "vg-data\n");
    file(`${dm}/dm/uuid`, "LVM-abcdef\n");
    link(`${dm}/slaves/nvme0n2`, `${ctrl}/nvme0n2`);
    link(`${ctrl}/nvme0n2/holders/dm-0`, dm);
    mkdirSync(join(root, ctrl, "nvme0n1/holders"), { recursive: true });
    link("/dev/disk/by-uuid/6a1c0ffe", "/dev/nvme0n1p1");
    link("/dev/mapper/vg-data", "/dev/dm-0");
    // 00:06.0 NVMe with native multipath: the controller holds only the hidden path nvme1c1n1; the head nvme1n1
    // and its partition (the root file system) live under the NVMe subsystem, which links back to the controller
    const mp = pci("06.0");
    kdev(`${mp}/nvme/nvme1`, "/sys/class/nvme", "240:1", "nvme1");
    kdev(`${mp}/nvme/nvme1/nvme1c1n1`, BLOCK);
    const subsys = "/sys/devices/virtual/nvme-subsystem/nvme-subsys1";
    kdev(subsys, "/sys/class/nvme-subsystem");
    link(`${subsys}/nvme1`, `${mp}/nvme/nvme1`);
    link("/sys/class/nvme-subsystem/nvme-subsys1", subsys);
    kdev(`${subsys}/nvme1n1`, BLOCK, "259:5", "nvme1n1");
    kdev(`${subsys}/nvme1n1/nvme1n1p1`, BLOCK, "259:6", "nvme1n1p1");
    link(`${subsys}/nvme1n1/multipath/nvme1c1n1`, `${mp}/nvme/nvme1/nvme1c1n1`);
    // 00:07.0: an interface that is down, without address: free
    const idle = pci("07.0");
    kdev(`${idle}/net/ens7`, "/sys/class/net");
    file(`${idle}/net/ens7/flags`, "0x1002\n");
    // 00:08.0 GPU: a DRM card opened by Xorg, the framebuffer console on fb0
    const gpu = pci("08.0");
    kdev(`${gpu}/drm/card0`, "/sys/class/drm", "226:0", "dri/card0");
    kdev(`${gpu}/graphics/fb0`, "/sys/class/graphics", "29:0", "fb0");
    file("/sys/class/vtconsole/vtcon0/name", "(S) dummy device\n");
    file("/sys/class/vtconsole/vtcon0/bind", "0\n");
    file("/sys/class/vtconsole/vtcon1/name", "(M) frame buffer device\n");
    file("/sys/class/vtconsole/vtcon1/bind", "1\n");
    // 00:09.0 serial card: ttyS4 is a kernel console; 00:0a.0 virtio-vsock
    const serial = pci("09.0");
    kdev(`${serial}/tty/ttyS4`, "/sys/class/tty", "4:68", "ttyS4");
    file("/proc/consoles", "ttyS4                -W- (EC p a)    4:68\n");
    const vsock = pci("0a.0");
    kdev(`${vsock}/virtio3`, "/sys/bus/virtio", undefined, undefined, "vmw_vsock_virtio_transport");
    file("/proc/net/protocols", "protocol  size sockets  memory press maxhdr  slab module\nAF_VSOCK  1240      2\n");
    // processes: init and a raw opener in the initial mount namespace; two processes of another namespace, whose
    // mountinfo is read once (the second one's would add a mount of nvme0n3 if it were read)
    const mounts = "22 1 0:21 / /proc rw - proc proc rw\n" +
      "27 1 259:6 / / rw,relatime - ext4 /dev/nvme1n1p1 rw\n" +
      "40 27 0:45 / /srv/my\\040data rw,relatime - btrfs /dev/disk/by-uuid/6a1c0ffe rw\n";
    proc(1, "init", "mnt:[4026531841]", mounts);
    link("/proc/self", "1");
    proc(300, "qemu-system-x86", "mnt:[4026531841]", mounts);
    rawLink("/proc/300/fd/0", "/dev/null");
    rawLink("/proc/300/fd/7", "/dev/nvme0n3");
    rawLink("/proc/300/fd/8", "socket:[1234]");
    proc(400, "Xorg", "mnt:[4026531841]", mounts);
    rawLink("/proc/400/fd/12", "/dev/dri/card0");
    proc(500, "unshare", "mnt:[4026532217]", `${mounts}90 27 253:0 / /data rw - xfs /dev/mapper/vg-data rw\n`);
    proc(501, "sleep", "mnt:[4026532217]", `${mounts}91 27 259:4 / /x rw - xfs /dev/nvme0n3 rw\n`);
    file("/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/nvme0n1p2 partition 1024 0 -2\n");
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("finds interfaces and block devices at any depth, multipath heads and holders included", () => {
    assert.deepEqual(networkInterfaces("00:03.0", { root }), ["eth0"], "virtio-net: …/virtio2/net/eth0");
    assert.deepEqual(networkInterfaces("00:05.0", { root }), ["ens5"]);
    assert.deepEqual(blockDevices("00:04.0", { root }), [
      "dm-0",
      "nvme0n1",
      "nvme0n1p1",
      "nvme0n1p2",
      "nvme0n2",
      "nvme0n3",
    ]);
    assert.deepEqual(blockDevices("00:06.0", { root }), ["nvme1c1n1", "nvme1n1", "nvme1n1p1"]);
    assert.deepEqual(blockDevices("00:05.0", { root }), []);
  });

  it("reads addresses and default routes from procfs", () => {
    const net = readNetState({ root });
    assert.deepEqual(net.addresses.get("eth0"), ["192.0.2.2/24", "fd00::2/64"]);
    assert.deepEqual(net.defaultRoutes.get("eth0"), ["via 192.0.2.1"]);
    assert.equal(net.defaultRoutes.get("lo"), undefined, "IPv6's unreachable default route on lo is no route");
  });

  it("an interface nested below virtio that carries the default route is a critical use", () => {
    const uses = deviceUsers("00:03.0", { root });
    assert.deepEqual(uses.map((u) => [u.kind, u.name, u.critical]), [["default-route", "eth0", true]]);
    assert.match(uses[0].description, /eth0 is up with addresses 192\.0\.2\.2\/24, fd00::2\/64/);
    assert.match(uses[0].description, /default route \(via 192\.0\.2\.1\)/);
  });

  it("an interface that is up counts by its flags, whatever operstate says", () => {
    assert.deepEqual(deviceUsers("00:05.0", { root }).map((u) => [u.kind, u.description, u.critical]), [
      ["interface-up", "network interface ens5 is up", false],
    ]);
    assert.deepEqual(deviceUsers("00:07.0", { root }), [], "down, no address: free");
  });

  it("names mounts of every namespace, swap, holders and raw openers of an NVMe controller", () => {
    const uses = deviceUsers("00:04.0", { root });
    assert.deepEqual(uses.map((u) => [u.kind, u.name]), [
      ["mounted", "nvme0n1p1"],
      ["mounted", "dm-0"],
      ["swap", "nvme0n1p2"],
      ["held", "nvme0n2"],
      ["open", "nvme0n3"],
    ]);
    assert.deepEqual(uses.map((u) => u.description), [
      "nvme0n1p1 is mounted on /srv/my data",
      "dm-0 (on nvme0n2) is mounted on /data in the mount namespace of pid 500 (unshare)",
      "nvme0n1p2 holds swap",
      "nvme0n2 is held by dm-0 (LVM)",
      "process 300 (qemu-system-x86) has /dev/nvme0n3 open",
    ]);
    assert.equal(uses[4].process?.pid, 300);
    assert.ok(uses.every((u) => !u.critical));
  });

  it("a mount source written as a /dev/disk/by-uuid symlink is resolved (btrfs shows no block st_dev)", () => {
    // mountinfo's field 3 is 0:45 here, so only the resolved source ties the mount to nvme0n1p1
    const mounted = deviceUsers("00:04.0", { root }).filter((u) => u.kind === "mounted").map((u) => u.name);
    assert.ok(mounted.includes("nvme0n1p1"), `by-uuid source not resolved: ${mounted.join(", ")}`);
  });

  it("the root file system on a multipath head is a critical use of the controller", () => {
    const uses = deviceUsers("00:06.0", { root });
    assert.deepEqual(uses.map((u) => [u.kind, u.name, u.critical]), [["mounted", "nvme1n1p1", true]]);
    assert.equal(uses[0].description, "nvme1n1p1 (on nvme-subsys1) is mounted on / (the root file system)");
  });

  it("reports DRM openers, the framebuffer console, kernel consoles and vsock", () => {
    assert.deepEqual(deviceUsers("00:08.0", { root }).map((u) => u.description), [
      "process 400 (Xorg) has /dev/dri/card0 open",
      "fb0 carries the framebuffer console",
    ]);
    assert.deepEqual(deviceUsers("00:09.0", { root }).map((u) => u.description), ["ttyS4 is a kernel console"]);
    const [vsock] = deviceUsers("00:0a.0", { root });
    assert.equal(vsock.kind, "vsock");
    assert.match(vsock.description, /2 socket\(s\) open/);
  });

  it("one SystemScan serves many devices with the same answers", () => {
    const scan = new SystemScan({ root });
    for (const a of ["00:03.0", "00:04.0", "00:06.0", "00:07.0"]) {
      assert.deepEqual(deviceUsers(a, { root }, scan), deviceUsers(a, { root }));
    }
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
