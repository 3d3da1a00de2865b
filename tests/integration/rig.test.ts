// Checks the guest prepared by the VM rig (tests/vm): device nodes of the mode, devices bound to vfio-pci.
// Runs under `deno test` and `bun test`; skipped outside the VM (VFIO_TS_IN_VM unset).
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { skipUnless } from "./guest.ts";

// This file checks the rig's VFIO_TS_* protocol itself, so it reads the environment directly (not through guest.ts).
const env = process.env;
const skip = skipUnless(false, "the rig");

const IDS: Record<string, string> = {
  VFIO_TS_EDU: "0x1234:0x11e8",
  VFIO_TS_NVME: "0x1b36:0x0010",
  VFIO_TS_E1000E: "0x8086:0x10d3",
  VFIO_TS_IGB: "0x8086:0x10c9",
  VFIO_TS_VIRTIO_NET: "0x1af4:0x1000",
  VFIO_TS_VIRTIO_NET_MODERN: "0x1af4:0x1041",
};

function list(name: string): string[] {
  return (env[name] ?? "").split(",").filter(Boolean);
}

function sysfs(addr: string, file: string): string {
  return `/sys/bus/pci/devices/${addr}/${file}`;
}

function driverOf(addr: string): string | undefined {
  try {
    return basename(readlinkSync(sysfs(addr, "driver")));
  } catch {
    return undefined;
  }
}

function vfioDevices(): string[] {
  return Object.keys(IDS).flatMap(list);
}

test("the rig describes the guest", { skip }, () => {
  assert.match(env.VFIO_TS_MODE ?? "", /^(noiommu|iommu|iommufd)$/);
  const runtime = "Bun" in globalThis ? "bun" : "deno";
  assert.equal(env.VFIO_TS_RUNTIME, runtime);
  // tests/vm/setup.sh installs QEMU 10 from bookworm-backports (igb and SR-IOV need it)
  assert.match(env.VFIO_TS_QEMU_VERSION ?? "", /^10\.\d+\.\d+/, "VFIO_TS_QEMU_VERSION is QEMU 10.x");
  assert.ok(existsSync(env.VFIO_TS_DENO ?? ""), "VFIO_TS_DENO points at a binary");
  assert.ok(existsSync(env.VFIO_TS_BUN ?? ""), "VFIO_TS_BUN points at a binary");
  for (const a of [...vfioDevices(), ...list("VFIO_TS_KERNEL_DEVICES")]) {
    assert.match(a, /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/);
  }
  // VFIO_TS_HUBS: "0=addr,addr;1=addr"
  for (const hub of (env.VFIO_TS_HUBS ?? "").split(";").filter(Boolean)) {
    assert.match(hub, /^\d+=([0-9a-f:.]+)(,[0-9a-f:.]+)*$/);
  }
});

test("every VFIO_TS_* device is bound to vfio-pci", { skip }, () => {
  for (const [name, id] of Object.entries(IDS)) {
    for (const addr of list(name)) {
      const vendor = readFileSync(sysfs(addr, "vendor"), "utf8").trim();
      const device = readFileSync(sysfs(addr, "device"), "utf8").trim();
      assert.equal(`${vendor}:${device}`, id, `${name} ${addr} has the expected IDs`);
      assert.equal(driverOf(addr), "vfio-pci", `${name} ${addr} is bound to vfio-pci`);
    }
  }
  for (const addr of list("VFIO_TS_KERNEL_DEVICES")) {
    const drv = driverOf(addr);
    assert.ok(drv !== undefined && drv !== "vfio-pci", `${addr} stays on its kernel driver (${drv})`);
  }
});

test("the mode's device nodes exist", { skip }, () => {
  const devices = vfioDevices();
  assert.ok(devices.length > 0, "the rig put at least one device on vfio-pci");
  assert.ok(existsSync("/dev/vfio/vfio"), "/dev/vfio/vfio");
  for (const addr of devices) {
    const group = basename(readlinkSync(sysfs(addr, "iommu_group")));
    if (env.VFIO_TS_MODE === "noiommu") {
      assert.ok(existsSync(`/dev/vfio/noiommu-${group}`), `/dev/vfio/noiommu-${group} for ${addr}`);
    } else {
      assert.ok(existsSync(`/dev/vfio/${group}`), `/dev/vfio/${group} for ${addr}`);
    }
    if (env.VFIO_TS_MODE === "iommufd") {
      const cdevs = readdirSync(sysfs(addr, "vfio-dev"));
      assert.equal(cdevs.length, 1, `one vfio-dev entry for ${addr}`);
      assert.ok(existsSync(`/dev/vfio/devices/${cdevs[0]}`), `/dev/vfio/devices/${cdevs[0]} for ${addr}`);
    }
  }
  if (env.VFIO_TS_MODE === "iommufd") assert.ok(existsSync("/dev/iommu"), "/dev/iommu");
  // iommu mode stands for a legacy-only kernel: the rig hides the iommufd nodes there
  if (env.VFIO_TS_MODE === "iommu") assert.ok(!existsSync("/dev/iommu"), "no /dev/iommu in iommu mode");
  if (env.VFIO_TS_MODE === "noiommu") {
    assert.equal(readFileSync("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "utf8").trim(), "Y");
  }
});
