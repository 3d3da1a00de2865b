// In-use detection against the real kernel in the guest (lib/sysfs/in_use.ts and the `vfio bind`/`unbind`
// refusals of cli/binding.ts): a NIC on its kernel driver with an address, then with the default route (critical:
// --force is not enough, --force-critical is); an NVMe namespace on the kernel's nvme driver holding swap, and
// opened raw by a process in another mount namespace; patterns (`'*:*'`) that select several devices.
//
// The NIC cases use a virtio-net on its kernel driver when the rig has one, else the default set's e1000e left on
// its driver (01:02.0). The NVMe cases need an nvme on its kernel driver, which the default set has not; they skip
// with the reason otherwise. tools/test.sh runs this file with its own devices:
//   deno run -A tests/vm/test_vm.ts --filter in_use --devices edu,nvme:kernel,virtio-net@0:kernel
// Every change to the guest (addresses, routes, swap, processes) is undone even when a check fails.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readlinkSync } from "node:fs";
import { basename } from "node:path";
import { describe, it } from "node:test";
import { checkedDevices } from "../../cli/binding.ts";
import { RefusedError } from "../../cli/common.ts";
import { main } from "../../cli/vfio.ts";
import { blockDevices, deviceUsers, networkInterfaces } from "../../lib/sysfs/in_use.ts";
import { guest, skipUnless } from "./guest.ts";

const LONG = 300_000;
const driverOf = (addr: string): string | null => {
  try {
    return basename(readlinkSync(`/sys/bus/pci/devices/${addr}/driver`));
  } catch {
    return null;
  }
};
const onKernel = (driver: string): string | undefined => guest.kernelDevices.find((a) => driverOf(a) === driver);
const virtioNic = guest.kernelDevices.find((a) => driverOf(a) === "virtio-pci" && networkInterfaces(a).length > 0);
const NIC = guest.inVm ? virtioNic ?? onKernel("e1000e") : undefined;
const NVME = guest.inVm ? onKernel("nvme") : undefined;

function sh(command: string): string {
  const r = spawnSync("sh", ["-c", command], { encoding: "utf8" });
  assert.equal(r.status, 0, `${command}: ${r.stderr}`);
  return r.stdout;
}

/** Runs a cleanup command and ignores its failure (the state it undoes may not have been reached). */
function undo(command: string): void {
  spawnSync("sh", ["-c", command], { encoding: "utf8" });
}

/** The CLI's exit code (its output goes to the test log). */
function exitOf(...args: string[]): number {
  return main(args);
}

/** The refusal `vfio <verb> <args>` prints (the same text as its stderr line), or `null` when it would go on. */
function refusal(verb: string, args: string[], flags: Record<string, boolean> = {}): string | null {
  try {
    checkedDevices(args, flags, verb);
    return null;
  } catch (e) {
    if (!(e instanceof RefusedError)) throw e;
    return e.message;
  }
}

describe("in-use detection in the guest", () => {
  const skipNic = skipUnless(!NIC && "no NIC on its kernel driver (the default set has e1000e@1:kernel)", "NIC cases");
  it("a NIC with an address is refused unless --force; with the default route unless --force-critical", {
    skip: skipNic,
    timeout: LONG,
  }, () => {
    const nic = NIC!;
    const [name] = networkInterfaces(nic);
    assert.ok(name, `${nic} (${driverOf(nic)}) has an interface at some depth below it`);
    const wasUp = (parseInt(sh(`cat /sys/class/net/${name}/flags`), 16) & 1) !== 0;
    try {
      sh(`ip link set ${name} up && ip addr add 10.99.0.2/24 dev ${name}`);
      for (const verb of ["bind", "unbind"]) {
        const text = refusal(verb, [nic]);
        assert.match(text ?? "", new RegExp(`network interface ${name} is up with address(es)? 10\\.99\\.0\\.2/24`));
        assert.equal(exitOf(verb, nic, "--dry-run"), 3, `${verb} --dry-run is refused`);
        assert.equal(exitOf(verb, nic, "--dry-run", "--force"), 0, `${verb} --dry-run --force plans it`);
      }
      assert.ok(!deviceUsers(nic).some((u) => u.critical), "an address alone is not critical");
      sh(`ip route add default via 10.99.0.1 dev ${name}`);
      const uses = deviceUsers(nic);
      assert.deepEqual(uses.map((u) => [u.kind, u.name, u.critical]), [["default-route", name, true]]);
      for (const verb of ["bind", "unbind"]) {
        assert.match(
          refusal(verb, [nic], { force: true }) ?? "",
          /default route \(via 10\.99\.0\.1\).*cut this machine/,
        );
        assert.equal(exitOf(verb, nic, "--dry-run", "--force"), 3, `${verb} --force is not enough`);
        assert.equal(exitOf(verb, nic, "--dry-run", "--force-critical"), 0, `${verb} --force-critical plans it`);
      }
      // a pattern never selects it, whatever the flags
      const all = ["--all-matching", "--force", "--force-critical"];
      assert.equal(exitOf("bind", "*:*", "--dry-run", ...all), 3, "'*:*' with every flag is still refused");
      assert.match(refusal("bind", ["*:*"], { "all-matching": true, "force-critical": true }) ?? "", /pattern never/);
    } finally {
      undo(`ip route del default via 10.99.0.1 dev ${name}`);
      undo(`ip addr del 10.99.0.2/24 dev ${name}`);
      if (!wasUp) undo(`ip link set ${name} down`);
    }
  });

  it("a pattern that matches several devices needs --all-matching", { skip: skipNic, timeout: LONG }, () => {
    assert.equal(exitOf("bind", "*:*", "--dry-run", "--force"), 2);
    assert.equal(exitOf("unbind", "*:*", "--dry-run", "--force"), 2);
    assert.equal(exitOf("bind", NIC!, "--dry-run", "--force"), 0, "its own address is fine");
  });

  const skipNvme = skipUnless(
    !NVME && "no nvme on its kernel driver (--devices edu,nvme:kernel,virtio-net@0:kernel, a step of tools/test.sh)",
    "NVMe cases",
  );

  it("an NVMe namespace holding swap is refused unless --force", { skip: skipNvme, timeout: LONG }, () => {
    const nvme = NVME!;
    const ns = blockDevices(nvme).find((b) => /^nvme\d+n\d+$/.test(b));
    assert.ok(ns, `${nvme} has a namespace`);
    assert.deepEqual(deviceUsers(nvme), [], "unused at first");
    try {
      sh(`mkswap /dev/${ns} >/dev/null && swapon /dev/${ns}`);
      assert.deepEqual(deviceUsers(nvme).map((u) => [u.kind, u.name, u.critical]), [["swap", ns, false]]);
      for (const verb of ["bind", "unbind"]) {
        // QEMU 10's nvme is a multipath-capable controller: the kernel puts the namespace under an nvme-subsys device
        assert.match(refusal(verb, [nvme]) ?? "", new RegExp(`${ns}( \\(on nvme-subsys\\d+\\))? holds swap`));
        assert.equal(exitOf(verb, nvme, "--dry-run"), 3);
        assert.equal(exitOf(verb, nvme, "--dry-run", "--force"), 0);
      }
    } finally {
      undo(`swapoff /dev/${ns}`);
    }
    assert.deepEqual(deviceUsers(nvme), [], "free again after swapoff");
  });

  it("an NVMe namespace opened raw in another mount namespace names the process", {
    skip: skipNvme,
    timeout: LONG,
  }, async () => {
    const nvme = NVME!;
    const ns = blockDevices(nvme).find((b) => /^nvme\d+n\d+$/.test(b))!;
    // the holder: sleep with the namespace open on fd 3, in a mount namespace of its own
    let holder: ChildProcess | undefined;
    try {
      holder = spawn("unshare", ["-m", "sh", "-c", `exec 3</dev/${ns}; exec sleep 600`], { stdio: "ignore" });
      let uses = deviceUsers(nvme);
      const found = (): boolean => uses.some((u) => u.kind === "open" && u.process?.command === "sleep");
      for (let i = 0; i < 100 && !found(); i++) {
        await new Promise((r) => setTimeout(r, 100));
        uses = deviceUsers(nvme);
      }
      const open = uses.find((u) => u.kind === "open");
      const fd = spawnSync("readlink", [`/proc/${holder.pid}/fd/3`], { encoding: "utf8" }).stdout.trim();
      assert.ok(open, `the opener is found (its fd 3 reads ${fd}): ${JSON.stringify(uses)}`);
      assert.equal(open.process?.pid, holder.pid, "unshare and sh exec into sleep: one pid");
      assert.equal(open.process?.command, "sleep");
      // the path as the kernel shows it: from the other namespace's root (the guest's chroot: /mnt/host/dev/…)
      assert.match(open.description, new RegExp(`^process \\d+ \\(sleep\\) has (/.*)?/dev/${ns} open$`));
      const otherNs = sh(`readlink /proc/${open.process!.pid}/ns/mnt`) !== sh("readlink /proc/self/ns/mnt");
      assert.ok(otherNs, "the holder runs in another mount namespace");
      assert.match(refusal("bind", [nvme]) ?? "", /\(sleep\) has/);
      assert.equal(exitOf("bind", nvme, "--dry-run"), 3);
      assert.equal(exitOf("bind", nvme, "--dry-run", "--force"), 0);
    } finally {
      holder?.kill("SIGKILL");
    }
  });
});
