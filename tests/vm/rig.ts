/**
 * The real-kernel test rig: boots the Debian 6.12 guest built by setup.sh in QEMU (q35, TCG, emulated devices),
 * binds the test devices to vfio-pci and runs one command chrooted into the host's file system, see README.md.
 *
 * Protocol with the guest /init (init.sh): a per-run cpio archive appended to the initramfs carries /job/env and
 * /job/run.sh; the console (ttyS0, QEMU's stdout) carries @@VFIO_TS:...@@ markers, ttyS1/ttyS2 the command's
 * stdout/stderr (QEMU writes them to files that are tailed here).
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { hexDigits } from "../../lib/hex.ts";
import { shellQuote } from "../../lib/shell_quote.ts";
import { writeAllSync } from "../../lib/write_all.ts";

export const VM_DIR: string = dirname(fileURLToPath(import.meta.url));
export const REPO_DIR: string = resolve(VM_DIR, "../..");

export const MODES = ["noiommu", "iommu", "iommufd"] as const;
export type Mode = (typeof MODES)[number];
export const RUNTIMES = ["deno", "bun"] as const;
export type Runtime = (typeof RUNTIMES)[number];
export const DEVICE_KINDS = [
  "edu",
  "nvme",
  "e1000e",
  "igb",
  "virtio-net",
  "ivshmem",
  "nvme-cmb",
  "virtio-net-modern",
  "nvme-sriov",
] as const;
export type DeviceKind = (typeof DEVICE_KINDS)[number];

/** Name of the environment variable listing the addresses of one kind of device. */
export const ENV_OF_KIND: Record<DeviceKind, string> = {
  "edu": "VFIO_TS_EDU",
  "nvme": "VFIO_TS_NVME",
  "e1000e": "VFIO_TS_E1000E",
  "igb": "VFIO_TS_IGB",
  "virtio-net": "VFIO_TS_VIRTIO_NET",
  "virtio-net-modern": "VFIO_TS_VIRTIO_NET_MODERN",
  "ivshmem": "VFIO_TS_IVSHMEM",
  "nvme-cmb": "VFIO_TS_NVME_CMB", // an nvme with a 1 MiB controller memory buffer at BAR2 (peer-to-peer DMA tests)
  "nvme-sriov": "VFIO_TS_NVME_SRIOV",
};
const NIC_KINDS: readonly DeviceKind[] = ["e1000e", "igb", "virtio-net", "virtio-net-modern"];

export interface DeviceSpec {
  kind: DeviceKind;
  /** QEMU network hub of a NIC (frames sent by one NIC arrive at every other NIC on the same hub). */
  hub: number;
  /** Leave the device on its kernel driver instead of binding it to vfio-pci. */
  kernel: boolean;
  /**
   * Put the device and the one before it behind one conventional PCI bridge (list syntax: a trailing `+`), so the
   * guest gives them one IOMMU group.
   */
  sameSlot?: boolean;
}

export interface PlacedDevice extends DeviceSpec {
  /** Full PCI address in the guest, e.g. 0000:00:03.0. */
  addr: string;
  slot: number;
  /** Behind the bridge: the device number on bus 1; else 0. */
  fn: number;
  /** Behind the conventional PCI bridge in `slot`. */
  bridged?: boolean;
  mac?: string;
  image?: string;
}

/** First PCI slot of the test devices (00:03.0, 00:04.0, ...); the 9p shares sit at 1c/1d. */
const FIRST_SLOT = 3;
const LAST_SLOT = 0x1b;
const NVME_IMAGE_SIZE = 64 * 1024 * 1024;
/** A fresh image's first MiB: each 32-bit little-endian word holds its byte offset (examples/nvme.ts --check). */
const NVME_PATTERN_BYTES = 1024 * 1024;
/**
 * `ivshmem` (not in the default set): QEMU's ivshmem-plain whose BAR2 is a 16 GiB 64-bit BAR over a sparse,
 * shared file in the run's temporary folder (no memory is used until written). The q35 64-bit PCI hole is widened
 * so the guest kernel can place it.
 */
export const IVSHMEM_BAR_BYTES = 16 * 1024 ** 3;

/**
 * Parses a device list: comma separated `kind[@hub][:kernel]`, e.g. `edu,nvme,e1000e@0,e1000e@1:kernel`.
 * `default` expands to the default set.
 */
export function parseDevices(list: string, igbAvailable: boolean): DeviceSpec[] {
  const out: DeviceSpec[] = [];
  for (const raw of list.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (raw === "default") {
      out.push(...defaultDevices(igbAvailable));
      continue;
    }
    const m = /^([a-z0-9-]+)(?:@(\d+))?(?::(kernel|vfio))?(\+)?$/.exec(raw);
    if (!m) throw new Error(`bad device "${raw}" (expected kind[@hub][:kernel][+])`);
    if (m[4] && out.length === 0) throw new Error(`"${raw}": a trailing + joins the previous device's slot`);
    const kind = (m[1] === "virtio" || m[1] === "virtio-net-pci" ? "virtio-net" : m[1]) as DeviceKind;
    if (!DEVICE_KINDS.includes(kind)) {
      throw new Error(`unknown device kind "${m[1]}" (known: ${DEVICE_KINDS.join(", ")})`);
    }
    if (m[2] !== undefined && !NIC_KINDS.includes(kind)) throw new Error(`"${raw}": only NICs sit on a hub`);
    if (m[3] === "kernel" && (kind === "edu" || kind === "ivshmem")) {
      throw new Error(`"${raw}": ${kind} has no kernel driver`);
    }
    if (kind === "igb" && !igbAvailable) {
      console.error(`vm: skipping "${raw}": this QEMU has no igb device`);
      continue;
    }
    out.push({ kind, hub: Number(m[2] ?? 0), kernel: m[3] === "kernel", sameSlot: m[4] === "+" });
  }
  return out;
}

export function defaultDevices(igbAvailable: boolean): DeviceSpec[] {
  const d: DeviceSpec[] = [
    { kind: "edu", hub: 0, kernel: false },
    { kind: "nvme", hub: 0, kernel: false },
    { kind: "e1000e", hub: 0, kernel: false },
    { kind: "virtio-net", hub: 0, kernel: false },
  ];
  if (igbAvailable) d.push({ kind: "igb", hub: 0, kernel: false });
  // A second edu whose slot also holds an e1000e that stays on its kernel driver, alone on its hub: the CLI's bind
  // round trip, and (one IOMMU group for both functions) a group that is not viable while the e1000e is on e1000e.
  d.push({ kind: "edu", hub: 0, kernel: false });
  d.push({ kind: "e1000e", hub: 1, kernel: true, sameSlot: true });
  // A modern-only virtio-net (1af4:1041) last, so no address above changes: IOVAs through the emulated IOMMU.
  d.push({ kind: "virtio-net-modern", hub: 0, kernel: false });
  return d;
}

/**
 * Fixed slots in list order: the n-th slot is 0000:00:(03+n).0. A `sameSlot` device and the one before it sit
 * behind one conventional PCI bridge in that slot instead (secondary bus 1, devices 1, 2, …): the guest kernel
 * puts everything behind such a bridge into one IOMMU group, as on real machines.
 */
export function placeDevices(specs: DeviceSpec[]): PlacedDevice[] {
  const out: PlacedDevice[] = [];
  let slot = FIRST_SLOT - 1;
  let bridged = false;
  for (const s of specs) {
    const prev = out[out.length - 1];
    if (s.sameSlot && prev) {
      if (!prev.bridged) {
        if (bridged) throw new Error("only one bridged group of devices per run");
        prev.bridged = true;
        prev.fn = 1;
        prev.addr = "0000:01:01.0";
        bridged = true;
      }
      const dev = prev.fn + 1;
      const p: PlacedDevice = { ...s, slot: prev.slot, fn: dev, bridged: true, addr: `0000:01:${hex2(dev)}.0` };
      if (NIC_KINDS.includes(s.kind)) p.mac = `52:54:00:ab:${hex2(dev)}:${hex2(prev.slot)}`;
      out.push(p);
      continue;
    }
    slot++;
    if (slot > LAST_SLOT) throw new Error(`at most ${LAST_SLOT - FIRST_SLOT + 1} slots`);
    const p: PlacedDevice = { ...s, slot, fn: 0, addr: `0000:00:${hex2(slot)}.0` };
    if (NIC_KINDS.includes(s.kind)) p.mac = `52:54:00:ab:00:${hex2(slot)}`;
    out.push(p);
  }
  if (bridged) { for (const p of out) if (p.bridged && p.mac) p.mac = `52:54:00:ab:${hex2(p.fn)}:${hex2(p.slot)}`; }
  return out;
}

function hex2(n: number): string {
  return hexDigits(n, 2);
}

/** The device variables the guest command sees (see README.md). */
export function deviceEnv(devices: PlacedDevice[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kind of DEVICE_KINDS) {
    env[ENV_OF_KIND[kind]] = devices.filter((d) => d.kind === kind && !d.kernel).map((d) => d.addr).join(",");
  }
  env.VFIO_TS_KERNEL_DEVICES = devices.filter((d) => d.kernel).map((d) => d.addr).join(",");
  const hubs = new Map<number, string[]>();
  for (const d of devices.filter((d) => NIC_KINDS.includes(d.kind))) {
    hubs.set(d.hub, [...(hubs.get(d.hub) ?? []), d.addr]);
  }
  env.VFIO_TS_HUBS = [...hubs.entries()].sort((a, b) => a[0] - b[0]).map(([h, a]) => `${h}=${a.join(",")}`).join(";");
  env.VFIO_TS_MACS = devices.filter((d) => d.mac).map((d) => `${d.addr}=${d.mac}`).join(",");
  return env;
}

let versionCache: string | undefined;
/** The version of the QEMU the rig runs, e.g. "10.0.2" ("unknown" when qemu-system-x86_64 does not answer). */
export async function qemuVersion(): Promise<string> {
  if (versionCache === undefined) {
    try {
      const out = await new Deno.Command("qemu-system-x86_64", { args: ["--version"], stderr: "null" }).output();
      versionCache = /version (\S+)/.exec(new TextDecoder().decode(out.stdout))?.[1] ?? "unknown";
    } catch {
      versionCache = "unknown";
    }
  }
  return versionCache;
}

let igbCache: boolean | undefined;
/** Whether this QEMU has the igb device (QEMU 8.0+; bookworm's 7.2 lacks it). */
export async function qemuHasIgb(): Promise<boolean> {
  if (igbCache === undefined) {
    try {
      const out = await new Deno.Command("qemu-system-x86_64", { args: ["-device", "help"], stderr: "null" }).output();
      igbCache = /name "igb"/.test(new TextDecoder().decode(out.stdout));
    } catch {
      igbCache = false;
    }
  }
  return igbCache;
}

export interface KernelDir {
  dir: string;
  vmlinux: string;
  initramfs: string;
}

/** Runs setup.sh (cached: ~0.5 s when nothing changed; quiet then) and returns the kernel directory. */
export async function ensureSetup(quiet = true): Promise<KernelDir> {
  const out = await new Deno.Command("bash", {
    args: [resolve(VM_DIR, "setup.sh"), ...(quiet ? ["--quiet"] : [])],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) {
    throw new Error(`tests/vm/setup.sh failed (exit ${out.code})`);
  }
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  const dir = lines[lines.length - 1];
  return { dir, vmlinux: resolve(dir, "vmlinux"), initramfs: resolve(dir, "initramfs.cpio") };
}

/** Binaries the guest runs; they must be visible through the host's / (not below /tmp, which the guest hides). */
export function runtimeBinaries(): { deno: string; bun: string } {
  const deno = Deno.env.get("VFIO_TS_DENO") ?? firstExisting([resolve(REPO_DIR, "node_modules/deno/deno")]) ??
    Deno.execPath();
  const bun = Deno.env.get("VFIO_TS_BUN") ??
    firstExisting([resolve(REPO_DIR, "node_modules/bun/bin/bun.exe"), resolve(REPO_DIR, "node_modules/.bin/bun")]) ??
    "bun";
  return { deno, bun };
}

function firstExisting(paths: string[]): string | undefined {
  for (const p of paths) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Quotes a word for sh (the library's one quoting helper). */
export const shQuote: (word: string) => string = shellQuote;

export interface VmOptions {
  mode: Mode;
  runtime: Runtime;
  devices: DeviceSpec[];
  /** argv to exec in the guest, or a shell command line (run by /bin/sh -c). */
  command: { argv: string[] } | { sh: string };
  /** Guest working directory (the host cwd; falls back to the repository if the guest cannot see it). */
  cwd?: string;
  /** Extra environment for the command. */
  env?: Record<string, string>;
  memory?: string;
  /**
   * RAM QEMU puts below 4 GiB (q35 `max-ram-below-4g`, e.g. "512M"); the rest of `memory` lands above 4 GiB, so
   * the guest's page allocator (which prefers it) hands out physical DMA addresses past 4 GiB.
   */
  ramBelow4g?: string;
  /** Whole-run limit in seconds (boot included). */
  timeoutSec?: number;
  /** Interactive: the command runs on the console, attached to this terminal. */
  interactive?: boolean;
  /** Raw images for the nvme devices, in order (created with 64 MiB if missing); default: fresh per-run images. */
  nvmeImages?: string[];
  /** Echo the guest console (kernel log, init) to stderr. */
  verbose?: boolean;
  /**
   * Interrupt remapping on the emulated IOMMU (default true). Off, iommufd and type1 refuse devices with EPERM
   * unless told to allow unsafe interrupts: the library's error for that case is tested this way.
   */
  intremap?: boolean;
  onStdout?: (chunk: Uint8Array) => void;
  onStderr?: (chunk: Uint8Array) => void;
  /** Default "tcg". "auto" uses KVM when /dev/kvm opens (a nested /dev/kvm may not run -cpu max). */
  accel?: "auto" | "tcg" | "kvm";
  /**
   * QEMU's `-cpu` (default "max"). The P3 benchmark boots "max,pku=off": under TCG every WRPKRU, which V8 issues
   * around its code-space writes, flushes the whole emulated TLB, a cost no hardware CPU has (see BENCHMARKS.md).
   */
  cpu?: string;
  kernel?: KernelDir;
}

export type VmStatus = "ok" | "timeout" | "kernel-panic" | "kernel-issues" | "setup-failed" | "boot-failed" | "no-exit";

export interface VmResult {
  /** ok: the command ran and the guest powered off cleanly (exitCode is the command's status). */
  status: VmStatus;
  exitCode: number | null;
  message: string;
  console: string;
  devices: PlacedDevice[];
  env: Record<string, string>;
  wallMs: number;
  boots: number;
  /** Seconds of guest uptime when the command started. */
  readyUptime?: number;
}

const MARK = /@@VFIO_TS:([A-Z_]+)(?:=(-?\d+))?(?: ([^@]*))?@@(?: uptime=([\d.]+))?/g;
const PANIC = /Kernel panic|Oops:|BUG: |general protection fault|Call Trace:/;

function cpioEntry(name: string, mode: number, data: Uint8Array, ino: number): Uint8Array {
  const nameBytes = new TextEncoder().encode(name + "\0");
  const fields = [ino, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0];
  const header = new TextEncoder().encode("070701" + fields.map((n) => hexDigits(n, 8)).join(""));
  const pad = (n: number): number => (4 - (n % 4)) % 4;
  const out = new Uint8Array(
    header.length + nameBytes.length + pad(header.length + nameBytes.length) + data.length + pad(data.length),
  );
  out.set(header, 0);
  out.set(nameBytes, header.length);
  out.set(data, header.length + nameBytes.length + pad(header.length + nameBytes.length));
  return out;
}

/** A tiny newc cpio archive (appended to the initramfs; the kernel unpacks concatenated archives). */
export function makeCpio(files: Record<string, string>): Uint8Array {
  const parts: Uint8Array[] = [];
  let ino = 0x7f000;
  const dirs = new Set<string>();
  for (const name of Object.keys(files)) {
    const d = dirname(name);
    if (d !== "." && !dirs.has(d)) {
      dirs.add(d);
      parts.push(cpioEntry(d, 0o40755, new Uint8Array(), ino++));
    }
  }
  for (const [name, text] of Object.entries(files)) {
    parts.push(cpioEntry(name, 0o100755, new TextEncoder().encode(text), ino++));
  }
  parts.push(cpioEntry("TRAILER!!!", 0, new Uint8Array(), 0));
  const len = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(len + ((512 - (len % 512)) % 512));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function accelArg(accel: "auto" | "tcg" | "kvm"): Promise<string> {
  if (accel !== "auto") return accel;
  try {
    const f = await Deno.open("/dev/kvm", { read: true, write: true });
    f.close();
    return "kvm";
  } catch {
    return "tcg";
  }
}

/** Runs one command in a fresh guest. Retries once a boot that never reaches /init. */
export async function runVm(opts: VmOptions): Promise<VmResult> {
  const t0 = performance.now();
  const kernel = opts.kernel ?? await ensureSetup();
  const devices = placeDevices(opts.devices);
  const bins = runtimeBinaries();
  const env: Record<string, string> = {
    VFIO_TS_IN_VM: "1",
    VFIO_TS_MODE: opts.mode,
    VFIO_TS_RUNTIME: opts.runtime,
    VFIO_TS_INTREMAP: opts.intremap === false ? "off" : "on",
    VFIO_TS_QEMU_VERSION: await qemuVersion(),
    VFIO_TS_DENO: bins.deno,
    VFIO_TS_BUN: bins.bun,
    ...deviceEnv(devices),
  };
  const run = await Deno.makeTempDir({ prefix: "vfio-ts-vm-" });
  try {
    let nvmeIndex = 0;
    for (const d of devices.filter((d) => d.kind === "nvme" || d.kind === "nvme-cmb" || d.kind === "nvme-sriov")) {
      const given = opts.nvmeImages?.[nvmeIndex];
      d.image = given ? resolve(given) : resolve(run, `nvme${nvmeIndex}.img`);
      nvmeIndex++;
      try {
        await Deno.stat(d.image);
      } catch {
        const pattern = Uint32Array.from({ length: NVME_PATTERN_BYTES / 4 }, (_, i) => i * 4);
        await Deno.writeFile(d.image, new Uint8Array(pattern.buffer));
        await Deno.truncate(d.image, NVME_IMAGE_SIZE);
      }
    }
    let shmIndex = 0;
    for (const d of devices.filter((d) => d.kind === "ivshmem")) {
      d.image = resolve(run, `ivshmem${shmIndex++}.bin`);
      await Deno.writeFile(d.image, new Uint8Array(0));
      await Deno.truncate(d.image, IVSHMEM_BAR_BYTES); // sparse: no block is allocated until written
    }
    const initrd = resolve(run, "initrd.cpio");
    const base = await Deno.readFile(kernel.initramfs);
    const job = makeCpio({ "job/env": jobEnv(opts, devices), "job/run.sh": runScript(opts, env) });
    const all = new Uint8Array(base.length + job.length);
    all.set(base);
    all.set(job, base.length);
    await Deno.writeFile(initrd, all);

    const args = await qemuArgs(opts, kernel, devices, run, initrd);
    const deadline = t0 + (opts.timeoutSec ?? 600) * 1000;
    let result: VmResult | undefined;
    for (let boot = 1; boot <= 2; boot++) {
      const r = await boot1(opts, args, run, deadline);
      result = { ...r, devices, env, wallMs: performance.now() - t0, boots: boot };
      if (r.status !== "boot-failed" || boot === 2 || performance.now() > deadline) break;
      console.error(`vm: the guest never reached /init (${r.message}); retrying once`);
    }
    return result!;
  } finally {
    await Deno.remove(run, { recursive: true }).catch(() => {});
  }
}

function jobEnv(opts: VmOptions, devices: PlacedDevice[]): string {
  const v = (k: string, val: string): string => `${k}=${shQuote(val)}\n`;
  return v("MODE", opts.mode) +
    v("BIND", devices.filter((d) => !d.kernel).map((d) => d.addr).join(" ")) +
    v("KERNEL_DEVS", devices.filter((d) => d.kernel).map((d) => d.addr).join(" ")) +
    v("REPO", REPO_DIR) +
    v("SHELL_MODE", opts.interactive ? "1" : "0");
}

function runScript(opts: VmOptions, deviceVars: Record<string, string>): string {
  const env: Record<string, string> = {
    HOME: "/tmp",
    DENO_DIR: "/tmp/deno-cache",
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    PATH: `${REPO_DIR}/node_modules/.bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    TERM: opts.interactive ? (Deno.env.get("TERM") ?? "vt100") : "dumb",
    ...deviceVars,
    ...opts.env,
  };
  const cwd = opts.cwd ?? Deno.cwd();
  let s = "# generated by tests/vm/rig.ts\n";
  for (const [k, val] of Object.entries(env)) s += `export ${k}=${shQuote(val)}\n`;
  s += `cd ${shQuote(cwd)} 2>/dev/null || cd ${shQuote(REPO_DIR)}\n`;
  if ("argv" in opts.command) s += `exec ${opts.command.argv.map(shQuote).join(" ")}\n`;
  else s += `exec /bin/sh -c ${shQuote(opts.command.sh)}\n`;
  return s;
}

/** A value inside a QEMU key=value,... option: commas are doubled. */
function qemuValue(s: string): string {
  return s.replaceAll(",", ",,");
}

async function qemuArgs(
  opts: VmOptions,
  kernel: KernelDir,
  devices: PlacedDevice[],
  run: string,
  initrd: string,
): Promise<string[]> {
  const iommu = opts.mode !== "noiommu";
  const append = ["console=ttyS0", "panic=-1", "loglevel=4", "8250.nr_uarts=4"];
  if (iommu) append.push("intel_iommu=on");
  const args = [
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-machine",
    (iommu ? "q35,kernel-irqchip=split" : "q35") + (opts.ramBelow4g ? `,max-ram-below-4g=${opts.ramBelow4g}` : ""),
    "-accel",
    await accelArg(opts.accel ?? "tcg"),
    "-cpu",
    opts.cpu ?? "max",
    "-smp",
    "1",
    "-m",
    opts.memory ?? "2G",
    "-kernel",
    kernel.vmlinux,
    "-initrd",
    initrd,
    "-append",
    append.join(" "),
  ];
  if (opts.interactive) {
    args.push("-chardev", "stdio,id=con,mux=on,signal=off", "-serial", "chardev:con", "-mon", "chardev=con");
  } else {
    args.push("-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con");
  }
  args.push("-serial", `file:${run}/stdout`, "-serial", `file:${run}/stderr`);
  const intremap = opts.intremap === false ? "off" : "on";
  if (iommu) args.push("-device", `intel-iommu,intremap=${intremap},caching-mode=on,aw-bits=48`);
  args.push(
    "-fsdev",
    "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
    "-device",
    "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,addr=0x1c",
    "-fsdev",
    `local,id=repo,path=${qemuValue(REPO_DIR)},security_model=none,multidevs=remap`,
    "-device",
    "virtio-9p-pci,fsdev=repo,mount_tag=repo,addr=0x1d",
  );
  if (devices.some((d) => d.kind === "ivshmem")) args.push("-global", "q35-pcihost.pci-hole64-size=64G");
  // The guest makes VFs of an igb on its kernel driver, and of an SR-IOV nvme; the kernel puts their 64-bit BARs
  // above 4 GiB, where QEMU 10.0.2's VFs answer every read with 0 (igbvf.test.ts, sriov_nvme.test.ts). Without a
  // 64-bit window in the ACPI tables they go below 4 GiB (so these cannot share a run with ivshmem).
  else if (devices.some((d) => (d.kind === "igb" && d.kernel) || d.kind === "nvme-sriov")) {
    args.push("-global", "q35-pcihost.pci-hole64-size=0");
  }
  let n = 0;
  let nvmes = 0;
  let shms = 0;
  for (const d of devices) {
    if (d.bridged && d.fn === 1) {
      args.push("-device", `pci-bridge,id=bridge1,chassis_nr=1,addr=0x${d.slot.toString(16)}`);
    }
    const addr = d.bridged ? `bus=bridge1,addr=0x${d.fn.toString(16)}` : `addr=0x${d.slot.toString(16)}`;
    switch (d.kind) {
      case "edu":
        args.push("-device", `edu,dma_mask=0xffffffffffffffff,${addr}`);
        break;
      case "nvme-cmb":
      case "nvme":
        args.push(
          "-drive",
          `if=none,id=nvme${nvmes},file=${qemuValue(d.image ?? "")},format=raw`,
          "-device",
          `nvme,serial=vfio-ts-nvme${nvmes},drive=nvme${nvmes},${addr}${d.kind === "nvme-cmb" ? ",cmb_size_mb=1" : ""}`,
        );
        nvmes++;
        break;
      case "nvme-sriov":
        // SR-IOV (not in the default set): a primary controller in its own NVM subsystem with 2 VFs (secondary
        // controllers at functions 1 and 2 of its slot) and flexible queue/interrupt resources to give them; the
        // image is namespace 1 of the subsystem, shared by all its controllers
        args.push(
          "-drive",
          `if=none,id=nvme${nvmes},file=${qemuValue(d.image ?? "")},format=raw`,
          "-device",
          `nvme-subsys,id=nvmesubsys${nvmes}`,
          "-device",
          `nvme,serial=vfio-ts-nvme${nvmes},subsys=nvmesubsys${nvmes},sriov_max_vfs=2,sriov_vq_flexible=8,` +
            `sriov_vi_flexible=4,max_ioqpairs=10,msix_qsize=6,${addr}`,
          "-device",
          `nvme-ns,drive=nvme${nvmes},nsid=1`,
        );
        nvmes++;
        break;
      case "ivshmem":
        args.push(
          "-object",
          `memory-backend-file,id=shm${shms},size=${IVSHMEM_BAR_BYTES},share=on,mem-path=${qemuValue(d.image ?? "")}`,
          "-device",
          `ivshmem-plain,memdev=shm${shms},${addr}`,
        );
        shms++;
        break;
      case "e1000e":
      case "igb":
      case "virtio-net":
      case "virtio-net-modern": {
        // modern virtio-net DMAs through the emulated IOMMU when there is one (ACCESS_PLATFORM)
        const modern = `virtio-net-pci,disable-legacy=on${iommu ? ",iommu_platform=on" : ""}`;
        const model = d.kind === "virtio-net"
          ? "virtio-net-pci,disable-modern=on"
          : d.kind === "virtio-net-modern"
          ? modern
          : d.kind;
        args.push(
          "-netdev",
          `hubport,id=net${n},hubid=${d.hub}`,
          "-device",
          `${model},netdev=net${n},mac=${d.mac},romfile=,${addr}`,
        );
        break;
      }
    }
    n++;
  }
  return args;
}

interface BootResult {
  status: VmStatus;
  exitCode: number | null;
  message: string;
  console: string;
  readyUptime?: number;
}

/** Copies what QEMU appends to a file to a sink, until stop() is called (then drains the rest). */
function tail(path: string, sink: (b: Uint8Array) => void): { stop: () => Promise<void> } {
  let stopped = false;
  const loop = (async (): Promise<void> => {
    let f: Deno.FsFile | undefined;
    const buf = new Uint8Array(65536);
    for (;;) {
      const last = stopped;
      if (!f) {
        try {
          f = await Deno.open(path);
        } catch {
          // not created yet
        }
      }
      if (f) {
        for (;;) {
          const n = await f.read(buf);
          if (!n) break;
          sink(buf.slice(0, n));
        }
      }
      if (last) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    f?.close();
  })();
  return {
    stop: async (): Promise<void> => {
      stopped = true;
      await loop;
    },
  };
}

async function boot1(opts: VmOptions, args: string[], run: string, deadline: number): Promise<BootResult> {
  for (const f of ["stdout", "stderr"]) await Deno.remove(resolve(run, f)).catch(() => {});
  // whole chunks: Deno.stdout.writeSync may write part of one (line-buffered: up to a newline) and say so only in
  // its count, which lost kilobytes from the middle of bursts of long lines
  const onStdout = opts.onStdout ?? ((b: Uint8Array): void => writeAllSync(1, b));
  const onStderr = opts.onStderr ?? ((b: Uint8Array): void => writeAllSync(2, b));
  const child = new Deno.Command("qemu-system-x86_64", {
    args,
    stdin: opts.interactive ? "inherit" : "null",
    stdout: opts.interactive ? "inherit" : "piped",
    stderr: "piped",
  }).spawn();
  const outTail = tail(resolve(run, "stdout"), onStdout);
  const errTail = tail(resolve(run, "stderr"), onStderr);

  let consoleText = "";
  let sawInit = opts.interactive === true;
  let exitCode: number | null = null;
  let issues = 0;
  let setupFailed: string | undefined;
  let readyUptime: number | undefined;
  let panicked = false;
  let timedOut = false;
  let bootTimedOut = false;

  const onConsole = (text: string): void => {
    consoleText += text;
    if (opts.verbose) writeAllSync(2, text);
  };
  const scan = (): void => {
    for (const m of consoleText.matchAll(MARK)) {
      if (m[1] === "INIT") sawInit = true;
      else if (m[1] === "READY") readyUptime = Number(m[4]);
      else if (m[1] === "EXIT") exitCode = Number(m[2]);
      else if (m[1] === "KERNEL_ISSUES") issues = Number(m[2]);
      else if (m[1] === "SETUP_FAILED") setupFailed = m[3];
    }
    // the dmesg excerpt init prints before KERNEL_ISSUES is no panic by itself
    if (PANIC.test(consoleText.replace(/@@VFIO_TS:DMESG@@[\s\S]*?(@@VFIO_TS:KERNEL_ISSUES=\d+@@|$)/g, ""))) {
      panicked = true;
    }
  };

  const stderrP = new Response(child.stderr).text();
  const consoleP = (async (): Promise<void> => {
    if (opts.interactive) return;
    const dec = new TextDecoder();
    for await (const chunk of child.stdout) {
      onConsole(dec.decode(chunk, { stream: true }));
      scan();
    }
  })();

  // Watchdogs: whole-run deadline, and 120 s to reach /init (TCG boots in ~2-3 s).
  const bootLimit = performance.now() + 120_000;
  const timer = setInterval(() => {
    const now = performance.now();
    if (now > deadline && !timedOut) {
      timedOut = true;
      child.kill("SIGKILL");
    } else if (!sawInit && now > bootLimit && !bootTimedOut) {
      bootTimedOut = true;
      child.kill("SIGKILL");
    }
  }, 200);
  const status = await child.status;
  clearInterval(timer);
  await consoleP;
  scan();
  await outTail.stop();
  await errTail.stop();
  const qemuErr = (await stderrP).trim();
  const tailLines = (n: number): string => consoleText.trim().split("\n").slice(-n).join("\n");

  if (opts.interactive) {
    return { status: status.success ? "ok" : "no-exit", exitCode: status.code, message: "", console: "" };
  }
  const base = { console: consoleText, readyUptime, exitCode };
  if (timedOut) {
    return {
      ...base,
      status: "timeout",
      message: `time limit of ${opts.timeoutSec ?? 600} s reached${sawInit ? "" : " before /init"}; console tail:\n` +
        tailLines(30),
    };
  }
  if (!sawInit) {
    return {
      ...base,
      status: "boot-failed",
      message: (bootTimedOut ? "no /init within 120 s" : `qemu exited with ${status.code} before /init`) +
        (qemuErr ? `\nqemu: ${qemuErr}` : "") + `\nconsole tail:\n${tailLines(30)}`,
    };
  }
  if (panicked) {
    return { ...base, status: "kernel-panic", message: `guest kernel Oops/panic:\n${tailLines(60)}` };
  }
  if (setupFailed !== undefined) {
    return { ...base, status: "setup-failed", message: `guest set-up failed: ${setupFailed}\n${tailLines(40)}` };
  }
  if (exitCode === null) {
    return {
      ...base,
      status: "no-exit",
      message: `the guest stopped without reporting an exit status (qemu exit ${status.code})` +
        (qemuErr ? `\nqemu: ${qemuErr}` : "") + `\nconsole tail:\n${tailLines(40)}`,
    };
  }
  if (issues > 0) {
    return {
      ...base,
      status: "kernel-issues",
      message: `guest kernel logged ${issues} WARNING/BUG lines:\n${tailLines(60)}`,
    };
  }
  return { ...base, status: "ok", message: "" };
}
