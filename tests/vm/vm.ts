/**
 * `deno task vm [options] <script> [args...]` runs a script inside the test guest (deno run -A --no-check, or bun),
 * `deno task vm [options] --cmd "<shell command>"` runs a shell command, `--shell` opens an interactive guest shell.
 * The exit status is the command's; 124 when the time limit passes, 125 when the guest fails (boot, set-up, Oops).
 */
import { parseArgs } from "node:util";
import {
  type DeviceSpec,
  type Mode,
  MODES,
  parseDevices,
  qemuHasIgb,
  qemuVersion,
  type Runtime,
  RUNTIMES,
  runVm,
  shQuote,
  type VmOptions,
} from "./rig.ts";

const USAGE = `usage: deno task vm [options] <script> [args...]
       deno task vm [options] --cmd "<shell command>"
       deno task vm [options] --shell
options:
  --mode noiommu|iommu|iommufd   VFIO flavour of the guest (default: iommufd)
  --runtime deno|bun             runtime for <script> and VFIO_TS_RUNTIME (default: deno)
  --devices LIST                 comma separated kind[@hub][:kernel], kinds: edu nvme e1000e igb virtio-net virtio-net-modern ivshmem
                                 nvme-cmb nvme-sriov
                                 (default: edu,nvme,e1000e@0,virtio-net@0[,igb@0 if QEMU has it]; "default" expands)
  --nvme-image PATH              raw image behind the n-th nvme (repeatable; created with 64 MiB if missing)
  --env K=V                      extra environment variable for the command (repeatable)
  --memory SIZE                  guest RAM (default: 2G)
  --timeout S                    whole-run time limit in seconds (default: 600)
  --accel tcg|kvm|auto          (default: tcg; auto = kvm if /dev/kvm opens)
  --cpu MODEL                    QEMU -cpu model and flags, e.g. max,pku=off (default: max)
  --verbose                      echo the guest console (kernel log) to stderr
  --cmd "CMD"                    run a shell command instead of a script
  --shell                        interactive shell in the guest (Ctrl-A x quits QEMU)`;

const VALUE_OPTIONS = [
  "--mode",
  "--runtime",
  "--devices",
  "--nvme-image",
  "--env",
  "--memory",
  "--timeout",
  "--accel",
  "--cpu",
  "--cmd",
];

function fail(msg: string): never {
  console.error(`vm: ${msg}\n${USAGE}`);
  Deno.exit(2);
}

async function main(): Promise<number> {
  // Options end at the script: what follows it belongs to the script.
  const head: string[] = [];
  let rest: string[] = [];
  for (let i = 0; i < Deno.args.length; i++) {
    const a = Deno.args[i];
    if (a === "--") {
      rest = Deno.args.slice(i + 1);
      break;
    }
    if (!a.startsWith("-")) {
      rest = Deno.args.slice(i);
      break;
    }
    head.push(a);
    if (VALUE_OPTIONS.includes(a) && i + 1 < Deno.args.length) head.push(Deno.args[++i]);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: head,
      allowPositionals: true,
      strict: true,
      options: {
        "mode": { type: "string", default: "iommufd" },
        "runtime": { type: "string", default: "deno" },
        "devices": { type: "string" },
        "nvme-image": { type: "string", multiple: true },
        "env": { type: "string", multiple: true },
        "memory": { type: "string", default: "2G" },
        "timeout": { type: "string", default: "600" },
        "accel": { type: "string", default: "tcg" },
        "cpu": { type: "string", default: "max" },
        "verbose": { type: "boolean", default: false },
        "cmd": { type: "string" },
        "shell": { type: "boolean", default: false },
        "help": { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const { values: v } = parsed;
  const positionals = [...parsed.positionals, ...rest];
  if (v.help) {
    console.log(`${USAGE}\nQEMU: ${await qemuVersion()} (tests/vm/setup.sh installs it from bookworm-backports)`);
    return 0;
  }
  if (!MODES.includes(v.mode as Mode)) fail(`bad --mode ${v.mode}`);
  if (!RUNTIMES.includes(v.runtime as Runtime)) fail(`bad --runtime ${v.runtime}`);
  if (!["auto", "tcg", "kvm"].includes(v.accel)) fail(`bad --accel ${v.accel}`);
  if (!/^[a-zA-Z0-9_.=,+-]+$/.test(v.cpu)) fail(`bad --cpu ${v.cpu}: a QEMU CPU model such as max or max,pku=off`);
  const timeoutSec = Number(v.timeout);
  if (!(timeoutSec > 0)) fail(`bad --timeout ${v.timeout}`);
  const env: Record<string, string> = {};
  for (const kv of v.env ?? []) {
    const i = kv.indexOf("=");
    if (i <= 0) fail(`bad --env ${kv}`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const runtime = v.runtime as Runtime;
  let command: VmOptions["command"];
  if (v.shell) {
    command = { sh: "if [ -x /bin/bash ]; then exec /bin/bash -i; else exec /bin/sh -i; fi" };
  } else if (v.cmd !== undefined) {
    if (positionals.length) fail("--cmd takes no script");
    command = { sh: v.cmd };
  } else {
    if (!positionals.length) fail("no script given");
    const [script, ...args] = positionals;
    // the runtime binary comes from the guest environment
    const bin = runtime === "deno" ? `"$VFIO_TS_DENO" run -A --no-check` : `"$VFIO_TS_BUN" run`;
    command = { sh: `exec ${bin} ${[script, ...args].map(shQuote).join(" ")}` };
  }
  let devices: DeviceSpec[];
  try {
    devices = parseDevices(v.devices ?? "default", await qemuHasIgb());
  } catch (e) {
    fail((e as Error).message);
  }
  const r = await runVm({
    mode: v.mode as Mode,
    runtime,
    devices,
    command,
    env,
    memory: v.memory,
    timeoutSec,
    interactive: v.shell,
    nvmeImages: v["nvme-image"],
    verbose: v.verbose,
    accel: v.accel as "auto" | "tcg" | "kvm",
    cpu: v.cpu,
  });
  if (v.shell) return r.exitCode ?? 0;
  if (r.status === "ok") return r.exitCode ?? 0;
  console.error(`vm: ${r.status}: ${r.message}`);
  if (r.exitCode !== null) console.error(`vm: (the command itself exited with ${r.exitCode})`);
  return r.status === "timeout" ? 124 : 125;
}

Deno.exit(await main());
