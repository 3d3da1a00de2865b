// The `vfio` command line against the real kernel in the guest, on the runtime under test (Deno or Bun): status
// and groups match sysfs, the bind/restore round trip on an e1000e left on its kernel driver (refused while its
// interface is up, --force overrides), info and config on edu and nvme, register read/write on edu, and the
// one-line errors and exit codes of bad input. Most commands run through the CLI's main() in the test process
// (a Deno start costs seconds in the TCG guest); the ones that check what a user sees of a process (exit status,
// stderr without stack traces, the root check) run as child processes. Skips outside the guest.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { basename, join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { main } from "../../cli/vfio.ts";
import { readableCopy } from "./fixtures/world_readable.ts";
import { guest, skipBecause, skipIf } from "./guest.ts";

const { inVm, mode } = guest;
const EDU = guest.edu ?? "";
const NVME = guest.nvme ?? "";
const sysfs = (addr: string, attr: string): string => `/sys/bus/pci/devices/${addr}/${attr}`;
const driverOf = (addr: string): string | null => {
  try {
    return basename(readlinkSync(sysfs(addr, "driver")));
  } catch {
    return null;
  }
};
const NIC = inVm ? guest.kernelDevices.find((a) => driverOf(a) === "e1000e") ?? "" : "";
const OPEN = mode === "noiommu" ? ["--noiommu"] : [];
const IOMMU_PATH: Record<string, string> = { noiommu: "noiommu", iommu: "type1", iommufd: "iommufd" };
/** Per test: a Deno start in the TCG guest takes seconds, and some tests run a dozen commands. */
const LONG = 600_000;
const ENTRY = join(import.meta.dirname ?? ".", "../../cli/vfio.ts");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function command(args: readonly string[]): string[] {
  if (guest.runtime === "bun") return [guest.bins.bun, ENTRY, ...args];
  return [guest.bins.deno, "run", "-A", "--no-check", ENTRY, ...args];
}

/** Runs the CLI as users do: a child process of the runtime under test (seconds per start in the TCG guest). */
function spawned(...args: string[]): Run {
  const [exe, ...rest] = command(args);
  const r = spawnSync(exe, rest, { encoding: "utf8", timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** Runs the CLI's `main` in this process with stdout and stderr captured: the same code, without a start-up. */
function vfio(...args: string[]): Run {
  const out = process.stdout as unknown as { write: unknown };
  const err = process.stderr as unknown as { write: unknown };
  const [savedOut, savedErr] = [out.write, err.write];
  let stdout = "";
  let stderr = "";
  out.write = (chunk: string | Uint8Array): boolean => {
    stdout += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    return true;
  };
  err.write = (chunk: string | Uint8Array): boolean => {
    stderr += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    return true;
  };
  try {
    return { code: main(args), stdout, stderr };
  } finally {
    out.write = savedOut;
    err.write = savedErr;
  }
}

/** Runs and expects exit 0; returns stdout. */
function ok(...args: string[]): string {
  const r = vfio(...args);
  assert.equal(r.code, 0, `vfio ${args.join(" ")} exits 0; stderr: ${r.stderr}`);
  return r.stdout;
}

/** Runs (`run`: in-process or spawned), expects `code` and a single `vfio: …` line on stderr matching `pattern`. */
function failsWith(run: (...args: string[]) => Run, code: number, pattern: RegExp, ...args: string[]): string {
  const r = run(...args);
  assert.equal(r.code, code, `vfio ${args.join(" ")} exits ${code}; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line on stderr, no stack trace: ${r.stderr}`);
  assert.match(lines[0], /^vfio: /);
  assert.match(lines[0], pattern);
  return lines[0];
}

function fails(code: number, pattern: RegExp, ...args: string[]): string {
  return failsWith(vfio, code, pattern, ...args);
}

function json<T>(...args: string[]): T {
  return JSON.parse(ok(...args, "--json")) as T;
}

function iface(addr: string): string {
  const names = readdirSync(sysfs(addr, "net"));
  assert.equal(names.length, 1, `${addr} has one interface`);
  return names[0];
}

function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  assert.equal(r.status, 0, `ip ${args.join(" ")}: ${r.stderr}`);
}

interface StatusJson {
  devices: { address: string; vendor: number; device: number; driver: string | null; iommuGroup: number | null }[];
  noiommu: { enabled: boolean; supported: boolean | string };
  pciIds: string | null;
}

describe("vfio CLI in the guest", { skip: skipIf(guest.edu, "edu", "vfio CLI in the guest") }, () => {
  it("status --json matches sysfs for every device; text groups devices by driver", { timeout: LONG }, () => {
    const child = spawned("status", "--json");
    assert.equal(child.code, 0, child.stderr);
    const s = JSON.parse(child.stdout) as StatusJson;
    const names = readdirSync("/sys/bus/pci/devices").sort();
    assert.deepEqual(s.devices.map((d) => d.address).sort(), names);
    for (const d of s.devices) {
      assert.equal(d.driver, driverOf(d.address), `${d.address} driver`);
      assert.equal(d.vendor, parseInt(readFileSync(sysfs(d.address, "vendor"), "utf8"), 16));
      assert.equal(d.device, parseInt(readFileSync(sysfs(d.address, "device"), "utf8"), 16));
      let group: number | null = null;
      try {
        group = Number(basename(readlinkSync(sysfs(d.address, "iommu_group"))));
      } catch { /* none */ }
      assert.equal(d.iommuGroup, group, `${d.address} group`);
    }
    assert.equal(s.noiommu.enabled, mode === "noiommu");
    assert.equal(s.pciIds, "/usr/share/misc/pci.ids", "the host's pci.ids is visible in the chroot");
    const text = ok("status");
    const kernelPart = text.slice(text.indexOf("on a kernel driver"), text.indexOf("on no driver"));
    const vfioPart = text.slice(text.indexOf("on vfio-pci"), text.indexOf("on a kernel driver"));
    assert.ok(vfioPart.includes(EDU), "edu listed on vfio-pci");
    if (NIC) assert.match(kernelPart, new RegExp(`${NIC}  \\[8086:10d3\\] Ethernet controller: Intel Corporation`));
    assert.match(text, /^no-IOMMU mode: /m);
  });

  it("groups --json: edu's group is viable and lists it on vfio-pci", { timeout: LONG }, () => {
    const g = json<{ groups: { number: number; viable: boolean; noiommu: boolean; members: { address: string }[] }[] }>(
      "groups",
    );
    const group = g.groups.find((x) => x.members.some((m) => m.address === EDU));
    assert.ok(group, "edu's group is listed");
    assert.equal(group.viable, true);
    assert.equal(group.noiommu, mode === "noiommu");
    assert.match(ok("groups"), new RegExp(`group ${group.number}  viable`));
  });

  const bindNic = "bind refuses the e1000e while its interface is up; bind/restore round trip; --force";
  it(bindNic, {
    skip: inVm && skipBecause(!NIC && "no e1000e left on its kernel driver in the guest", bindNic),
    timeout: LONG,
  }, () => {
    const name = iface(NIC);
    ip("link", "set", name, "up");
    failsWith(spawned, 3, new RegExp(`refusing to bind ${NIC}: network interface ${name} is up.*--force`), "bind", NIC);
    assert.equal(driverOf(NIC), "e1000e", "a refusal changes nothing");
    ip("link", "set", name, "down");

    const plan = ok("bind", NIC, "--dry-run");
    assert.match(plan, new RegExp(`echo vfio-pci > /sys/bus/pci/devices/${NIC}/driver_override`));
    assert.match(plan, new RegExp(`echo ${NIC} > /sys/bus/pci/drivers/e1000e/unbind`));
    assert.equal(driverOf(NIC), "e1000e", "a dry run changes nothing");

    assert.match(ok("bind", NIC), new RegExp(`${NIC}: e1000e -> vfio-pci`));
    assert.equal(driverOf(NIC), "vfio-pci");
    const onVfio = json<StatusJson>("status").devices.find((d) => d.address === NIC);
    assert.equal(onVfio?.driver, "vfio-pci");
    assert.match(ok("bind", "8086:10d3", "--all-matching"), new RegExp(`${NIC}: already on vfio-pci`), "vendor:device");

    assert.match(ok("restore", NIC), new RegExp(`${NIC}: vfio-pci -> e1000e`));
    assert.equal(driverOf(NIC), "e1000e");
    assert.equal(json<StatusJson>("status").devices.find((d) => d.address === NIC)?.driver, "e1000e");

    const again = iface(NIC);
    ip("link", "set", again, "up");
    assert.match(ok("bind", NIC, "--force"), /e1000e -> vfio-pci/);
    assert.equal(driverOf(NIC), "vfio-pci");
    assert.match(ok("unbind", NIC), new RegExp(`${NIC}: unbound from vfio-pci`));
    assert.equal(driverOf(NIC), null);
    assert.match(ok("restore", NIC), new RegExp(`${NIC}: no driver -> e1000e`));
    assert.equal(driverOf(NIC), "e1000e");
    assert.equal(readFileSync(sysfs(NIC, "driver_override"), "utf8").trim(), "(null)", "driver_override cleared");
  });

  it("info and config on edu: 1 MiB BAR0, MSI, the IOMMU path; read/write of edu registers", { timeout: LONG }, () => {
    type Info = {
      iommu: string;
      regions: { index: number; size: number }[];
      irqs: { name: string; count: number }[];
      capabilities: { name: string; details: Record<string, unknown> }[];
    };
    const info = json<Info>("info", EDU, ...OPEN);
    assert.equal(info.iommu, IOMMU_PATH[mode]);
    assert.equal(info.regions.find((r) => r.index === 0)?.size, 1 << 20);
    assert.equal(info.irqs.find((i) => i.name === "MSI")?.count, 1);
    assert.ok(info.capabilities.some((c) => c.name === "MSI"), "edu has MSI");
    const text = ok("info", EDU, ...OPEN);
    assert.match(text, new RegExp(`IOMMU path: ${IOMMU_PATH[mode]}`));
    assert.match(text, /0 BAR0\s+1 MiB\s+read,write,mmap/);

    const cfg = json<{ size: number; header: { vendor: number; device: number }; bytes: number[] }>(
      "config",
      EDU,
      ...OPEN,
    );
    assert.deepEqual([cfg.header.vendor, cfg.header.device], [0x1234, 0x11e8]);
    assert.deepEqual(cfg.bytes.slice(0, 4), [0x34, 0x12, 0xe8, 0x11]);
    assert.match(ok("config", EDU, ...OPEN), /^000: 34 12 e8 11/m);

    const id = spawned("read", EDU, "0", "0", ...OPEN);
    assert.deepEqual([id.code, id.stdout, id.stderr], [0, "0x010000ed\n", ""]);
    ok("write", EDU, "0", "0x4", "0x12345678", ...OPEN);
    assert.equal(ok("read", EDU, "0", "4", ...OPEN), "0xedcba987\n", "edu's liveness register inverts");
    ok("write", EDU, "bar0", "0x80", "0x1000", "--width", "64", ...OPEN); // DMA source: inert until 0x98 is written
    const r64 = json<{ value: string; width: number }>("read", EDU, "0", "0x80", "--width", "64", ...OPEN);
    assert.deepEqual([r64.value, r64.width], ["0x0000000000001000", 64]);
  });

  const nvmeInfo = "info and config on nvme: BAR0 as sysfs sizes it, MSI-X matching the kernel's vector count";
  it(
    nvmeInfo,
    { skip: inVm && skipBecause(!NVME && "no nvme on vfio-pci in the guest", nvmeInfo), timeout: LONG },
    () => {
      type Info = {
        regions: { index: number; size: number }[];
        irqs: { name: string; count: number }[];
        capabilities: { name: string; details: { vectors?: number; tableBar?: number } }[];
      };
      const info = json<Info>("info", NVME, ...OPEN);
      const line = readFileSync(sysfs(NVME, "resource"), "utf8").split("\n")[0].split(/\s+/).map((x) => BigInt(x));
      assert.equal(BigInt(info.regions.find((r) => r.index === 0)?.size ?? 0), line[1] - line[0] + 1n);
      const msix = info.capabilities.find((c) => c.name === "MSIX");
      assert.ok(msix, "nvme has MSI-X");
      assert.equal(info.irqs.find((i) => i.name === "MSI-X")?.count, msix.details.vectors);
      const text = ok("config", NVME, ...OPEN);
      assert.match(text, /\] MSIX\s+vectors=\d+/);
      assert.match(text, /BAR0: memory \(64-bit, non-prefetchable\)/);
      assert.match(text, /^ff0: /m, "PCI Express: 4 KiB of config space");
    },
  );

  it("bad input: one line, a remedy, a non-zero exit", { timeout: LONG }, () => {
    failsWith(spawned, 1, /no PCI device 0000:00:1f\.7/, "info", "0000:00:1f.7");
    fails(2, /neither a PCI address nor a vendor:device/, "read", "00:zz.0", "0", "0");
    fails(1, /has no BAR2 \(it has BAR0\)/, "read", EDU, "2", "0", ...OPEN);
    fails(1, /beyond the region's 0x100000 bytes/, "read", EDU, "0", "0x100000", ...OPEN);
    fails(1, /misaligned/, "read", EDU, "0", "2", ...OPEN);
    fails(2, /BAR6 does not exist/, "read", EDU, "6", "0");
    fails(2, /does not fit in 8 bits/, "write", EDU, "0", "4", "0x100", "--width", "8");
    failsWith(spawned, 2, /unknown command "frobnicate"/, "frobnicate");
    fails(2, /Unknown option '--bogus'/, "status", "--bogus");
    if (NIC) fails(1, /is bound to e1000e, not to vfio-pci \(bind it first: vfio bind/, "info", NIC);
    if (mode === "noiommu") fails(1, /no-IOMMU group.*--noiommu/, "info", EDU);
    // the rig's bridged group: a second edu on vfio-pci beside the e1000e kept on its driver (one IOMMU group)
    const bridgedEdu = guest.devices.edu.find((a) => a.startsWith("0000:01:"));
    if (bridgedEdu && NIC.startsWith("0000:01:") && mode !== "noiommu") {
      fails(
        1,
        new RegExp(`IOMMU group \\d+ is not viable: .*${NIC} \\(e1000e\\).*vfio bind ${NIC}`),
        "info",
        bridgedEdu,
      );
    }
    // not root: a sysfs write would fail; the CLI says so before trying (nobody runs a world-readable copy: the
    // checkout, e.g. a clone under /root, may be out of its reach)
    const [exe, ...rest] = command(["bind", EDU]);
    using copy = readableCopy([], exe);
    const args = rest.map((a) => a === ENTRY ? copy.at("cli/vfio.ts") : a);
    const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", copy.runtime, ...args], {
      cwd: copy.dir,
      encoding: "utf8",
      env: { ...process.env, HOME: copy.home, DENO_DIR: copy.home, BUN_INSTALL_CACHE_DIR: copy.home },
    });
    assert.equal(r.status, 1, `not root: ${r.stderr}`);
    assert.match(r.stderr.trim(), /^vfio: vfio bind needs root \(run it as root, e\.g\. with sudo\)$/);
  });

  it("noiommu status reflects the mode", { timeout: LONG }, () => {
    const s = json<{ supported: boolean | string; enabled: boolean }>("noiommu", "status");
    assert.equal(s.supported, true);
    assert.equal(s.enabled, mode === "noiommu");
    fails(2, /unknown action "toggle"/, "noiommu", "toggle");
  });
});
