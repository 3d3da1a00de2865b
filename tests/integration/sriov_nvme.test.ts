// An NVMe VF in user space, on QEMU's SR-IOV nvme (the rig's `nvme-sriov` kind: a primary controller with two
// secondary controllers, one namespace shared by all): the PF stays on the kernel's nvme driver, which brings a
// secondary controller online with Virtualization Management commands (`nvme virt-mgmt` of Debian's nvme-cli:
// assign flexible queue and interrupt resources, create the VF with setVfCount(bind), online); examples/nvme.ts
// then identifies the VF, writes a pattern and reads it back, and the kernel reads the same blocks through the PF's
// namespace (O_DIRECT). Everything is undone (VF offline, destroyed) even when a check fails. To run it:
//   deno run -A tests/vm/test_vm.ts --filter sriov_nvme --mode iommu --devices nvme-sriov:kernel
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { setVfCount, sriovStatus } from "../../lib/sysfs/sriov.ts";
import { guest, skipUnless } from "./guest.ts";

const LONG = 600_000;
const isBun = "Bun" in globalThis;
const driverOf = (addr: string): string | null => {
  try {
    return basename(readlinkSync(`/sys/bus/pci/devices/${addr}/driver`));
  } catch {
    return null;
  }
};
const has = (cmd: string): boolean => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const PF = guest.kernelDevices.find((a) =>
  driverOf(a) === "nvme" && readdirSync(`/sys/bus/pci/devices/${a}`).includes("sriov_totalvfs")
);
// QEMU 10.0's nvme VF answers MMIO only with its BAR below 4 GiB (above, CAP and CSTS read 0): the rig's nvme-sriov
// kind leaves the guest no 64-bit PCI window, so the kernel places the VF BARs in the 32-bit one.
const skip = skipUnless(
  !PF
    ? "no SR-IOV nvme on the kernel's driver (--devices nvme-sriov:kernel)"
    : !has("nvme") && "no nvme-cli (tools/setup.sh installs it)",
  "NVMe VF",
);

function sh(command: string): string {
  const r = spawnSync("sh", ["-c", command], { encoding: "utf8" });
  assert.equal(r.status, 0, `${command}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function nvmeExample(address: string, ...args: string[]): { status: number | null; out: string } {
  const script = ["examples/nvme.ts", address, ...guest.noiommuFlag, ...args];
  const argv = isBun ? script : ["run", "-A", "--no-check", ...script];
  const r = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 300_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The pattern examples/nvme.ts writes: each 32-bit little-endian word is its byte offset XOR the seed. */
function holdsPattern(bytes: Uint8Array, firstByte: number, seed: number): string | null {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let o = 0; o + 4 <= bytes.length; o += 4) {
    const want = ((firstByte + o) ^ seed) >>> 0;
    if (v.getUint32(o, true) !== want) return `byte ${firstByte + o} holds 0x${v.getUint32(o, true).toString(16)}`;
  }
  return null;
}

describe("NVMe VF in user space", () => {
  it("a secondary controller online, its VF on vfio-pci: identify, write, read back; the PF's namespace agrees", {
    skip,
    timeout: LONG,
  }, () => {
    const pf = PF!;
    const ctrl = readdirSync(`/sys/bus/pci/devices/${pf}/nvme`)[0];
    const dev = `/dev/${ctrl}`;
    const list = sh(`nvme list-secondary ${dev}`);
    console.log(list);
    const scids = [...list.matchAll(/SCID\s*:[^:\n]*:\s*(0x[0-9a-f]+|\d+)/gi)].map((m) => Number(m[1]));
    assert.ok(scids.length >= 1, `secondary controllers listed:\n${list}`);
    const scid = scids[0];
    try {
      sh(`nvme virt-mgmt ${dev} -c ${scid} -r 0 -a 8 -n 4`); // 4 queues: admin + 3 I/O
      sh(`nvme virt-mgmt ${dev} -c ${scid} -r 1 -a 8 -n 2`); // 2 interrupt vectors
      const made = setVfCount(pf, 1, { bind: true });
      const vf = made.vfs[0].address;
      assert.equal(driverOf(vf), "vfio-pci", "the VF went to vfio-pci, not to the nvme driver");
      sh(`nvme virt-mgmt ${dev} -c ${scid} -a 9`); // online
      console.log(sh(`nvme list-secondary ${dev}`));

      const seed = 0x5f0c1a7;
      const lba = 2048 + Math.floor(Math.random() * 1000);
      const w = nvmeExample(vf, "--write", "--lba", String(lba), "--blocks", "16", "--seed", `0x${seed.toString(16)}`);
      console.log(w.out);
      assert.equal(w.status, 0, w.out);
      assert.match(w.out, /^mn +: QEMU NVMe Ctrl$/m);
      assert.match(w.out, /wrote the pattern/);

      const bytes = new Uint8Array(
        spawnSync("dd", [`if=${dev}n1`, "bs=512", `skip=${lba}`, "count=16", "iflag=direct", "status=none"]).stdout,
      );
      assert.equal(bytes.length, 16 * 512, "the PF's namespace read through the kernel");
      assert.equal(holdsPattern(bytes, lba * 512, seed), null, "the kernel sees the VF's writes");
    } finally {
      spawnSync("sh", ["-c", `nvme virt-mgmt ${dev} -c ${scid} -a 7`]); // offline
      setVfCount(pf, 0);
    }
    assert.equal(sriovStatus(pf).numVfs, 0);
  });
});
