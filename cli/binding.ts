/**
 * What `bind`, `unbind` and `restore` share: resolving device arguments (patterns only on request), the in-use
 * refusal, the root check, printing the steps, keeping SIGINT/SIGTERM from cutting the sysfs steps short, and bad
 * driver names or records as bad input (exit 2).
 *
 * ```ts
 * import { checkedDevices } from "./binding.ts";
 * const devices = checkedDevices(["0000:00:05.0"], {}, "bind"); // throws a RefusedError when its interface is up
 * ```
 * @module
 */

import process from "node:process";
import { InvalidDriverError, UntrustedRecordError } from "../lib/errors.ts";
import { isPciAddress } from "../lib/pci_address.ts";
import { describeStep, type SysfsStep } from "../lib/sysfs/bind.ts";
import { deviceUsers, SystemScan } from "../lib/sysfs/in_use.ts";
import { sleepSync } from "../lib/sysfs/lock.ts";
import type { PciDeviceInfo } from "../lib/sysfs/pci.ts";
import {
  print,
  RefusedError,
  requireRoot,
  resolveDevices,
  UsageError,
  type Values,
  warn,
  writeJson,
} from "./common.ts";

/** Options of `bind` and `unbind`. */
export const BINDING_OPTIONS = {
  "dry-run": { type: "boolean" },
  force: { type: "boolean" },
  "force-critical": { type: "boolean" },
  "all-matching": { type: "boolean" },
} as const;

/** Options of the three commands. */
export const BINDING_HELP = `  --dry-run         print what would be done (the shell commands), do nothing
  --force           go on although the system uses the device (interface up, mounted, swap, held, open)
  --force-critical  go on even when the device carries the default route or the root file system (implies
                    --force; the machine may lose its network connection or crash)
  --all-matching    let a vendor:device pattern (with * or matching several devices) select every match; a device
                    carrying the default route or the root file system is never selected by a pattern`;

/**
 * The devices of a `bind`/`unbind` command line. A `vendor:device` pattern that has a `*` or matches more than one
 * device is a usage error unless `--all-matching` (so that `bind '*:*' --force` cannot plan every device of the
 * machine); the devices such a pattern selects are remembered as not named explicitly.
 */
function bindingDevices(args: readonly string[], values: Values): (PciDeviceInfo & { byPattern: boolean })[] {
  const out = new Map<string, PciDeviceInfo & { byPattern: boolean }>();
  for (const arg of args) {
    const found = resolveDevices([arg]);
    const byPattern = !isPciAddress(arg);
    if (byPattern && (arg.includes("*") || found.length > 1) && values["all-matching"] !== true) {
      throw new UsageError(`${arg} matches ${found.map((d) => d.address).join(", ")}`, {
        remedy: "name the addresses you mean, or pass --all-matching to take every match",
      });
    }
    for (const d of found) {
      out.set(d.address, { ...d, byPattern: byPattern && (out.get(d.address)?.byPattern ?? true) });
    }
  }
  return [...out.values()];
}

/**
 * Throws a {@linkcode RefusedError} naming every use of each device not on vfio-pci: any use unless `--force`,
 * a critical one (default route, root file system) unless `--force-critical`, and a critical one of a device
 * selected by a pattern always.
 */
function refuseInUse(
  devices: readonly (PciDeviceInfo & { byPattern?: boolean })[],
  verb: string,
  values: Values,
): void {
  const forceCritical = values["force-critical"] === true;
  const force = values.force === true || forceCritical;
  const scan = new SystemScan();
  for (const d of devices) {
    if (d.driver === "vfio-pci") continue;
    const uses = deviceUsers(d.address, {}, scan);
    const critical = uses.filter((u) => u.critical);
    if (critical.length > 0 && (!forceCritical || d.byPattern === true)) {
      const what = critical.map((u) =>
        u.kind === "default-route" ? "cut this machine off its network" : "pull the root file system from under it"
      );
      throw new RefusedError(
        `refusing to ${verb} ${d.address}: ${uses.map((u) => u.description).join("; ")}; ` +
          `taking it from its driver would ${[...new Set(what)].join(" and ")}`,
        {
          remedy: d.byPattern === true
            ? `a pattern never selects such a device: name ${d.address} itself, with --force-critical if you really mean it`
            : "if you really mean it and have a console or another way in, pass --force-critical",
        },
      );
    }
    if (uses.length === 0 || force) continue;
    const up = uses.filter((u) => u.kind === "interface-up").map((u) => `ip link set ${u.name} down`);
    throw new RefusedError(`refusing to ${verb} ${d.address}: ${uses.map((u) => u.description).join("; ")}`, {
      remedy: up.length > 0
        ? `take it down first: ${up.join("; ")}; or pass --force`
        : "stop using it, or pass --force",
    });
  }
}

/**
 * The devices of a `bind`/`unbind` command line ({@linkcode bindingDevices}), once none is refused
 * ({@linkcode refuseInUse}).
 */
export function checkedDevices(args: readonly string[], values: Values, verb: string): PciDeviceInfo[] {
  const devices = bindingDevices(args, values);
  refuseInUse(devices, verb, values);
  return devices;
}

/**
 * What `bind` and `unbind` share: at least one device argument, the in-use refusal, root unless `--dry-run`, the
 * `change` of every device (with signals held off, {@linkcode withDriverChange}) and the `--json` output. Returns
 * the results (and whether it was a dry run) for the command's text, or `null` when they went out as JSON.
 */
export function changeEachDevice<R>(
  verb: "bind" | "unbind",
  positionals: readonly string[],
  values: Values,
  change: (address: string, options: { dryRun: boolean; onStep?: (step: string) => void }) => R,
): { results: R[]; dryRun: boolean } | null {
  if (positionals.length === 0) throw new UsageError("missing device", { remedy: `usage: vfio ${verb} <device…>` });
  const dryRun = values["dry-run"] === true;
  const devices = checkedDevices(positionals, values, verb);
  requireRootUnlessDry(verb, dryRun);
  const onStep = testPauseHook();
  const results = withDriverChange(() => devices.map((d) => change(d.address, { dryRun, onStep })));
  if (!values.json) return { results, dryRun };
  writeJson({ results });
  return null;
}

/** The root check, skipped for dry runs. */
export function requireRootUnlessDry(command: string, dryRun: boolean): void {
  if (!dryRun) requireRoot(`vfio ${command}`);
}

/** Prints the steps of a dry run as shell commands. */
export function printSteps(address: string, steps: readonly SysfsStep[]): void {
  if (steps.length === 0) print(`${address}: nothing to do`);
  for (const s of steps) print(`${describeStep(s)}    # ${s.purpose}`);
}

const SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const;
const SIGNAL_GRACE_MS = 250;

/**
 * Runs the sysfs steps of a command with SIGINT and SIGTERM held off: the runtime queues them while `steps` runs
 * (synchronously), so a bind is never cut between its writes — it completes, or fails and rolls back. A signal
 * that came in meanwhile is acted on once the steps are over: the process says so and exits with 128 + its number.
 * Driver names or records that fail validation become {@linkcode UsageError}s (exit 2).
 */
export function withDriverChange<T>(steps: () => T): T {
  const handlers = Object.entries(SIGNALS).map(([name, number]) => {
    const handler = (): void => {
      warn(`${name}: the driver changes already started were finished or rolled back; exiting`);
      process.exit(128 + number);
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  try {
    return steps();
  } catch (e) {
    if (e instanceof InvalidDriverError || e instanceof UntrustedRecordError) {
      throw new UsageError(e.message, { cause: e }); // the message carries the remedy already
    }
    throw e;
  } finally {
    // A signal queued during the steps reaches the handler on a later turn of the event loop (in a slow guest, Deno
    // needed more than 20 ms): the handlers stay, and keep the process, for that long.
    setTimeout(() => handlers.forEach(([name, handler]) => process.off(name, handler)), SIGNAL_GRACE_MS);
  }
}

/**
 * FOR TESTS ONLY: with `VFIO_TS_BIND_PAUSE_AFTER=<step>[,<step>…]` (`record`, `modprobe`, `driver_override`,
 * `unbind`, `drivers_probe`, `bind`, or `*`), `bind`, `unbind` and `restore` stop after that step for
 * `VFIO_TS_BIND_PAUSE_MS` ms (default 3000), after printing `@@vfio-ts:paused:<step>:<pid>@@` on stderr, so that a
 * test can signal or kill the process between two sysfs writes. Unset, it does nothing.
 */
export function testPauseHook(): ((step: string) => void) | undefined {
  const after = process.env.VFIO_TS_BIND_PAUSE_AFTER;
  if (!after) return undefined;
  const steps = new Set(after.split(","));
  const ms = Number(process.env.VFIO_TS_BIND_PAUSE_MS ?? 3000);
  return (step) => {
    if (!steps.has(step) && !steps.has("*")) return;
    process.stderr.write(`@@vfio-ts:paused:${step}:${process.pid}@@\n`);
    sleepSync(Number.isFinite(ms) ? ms : 3000);
  };
}
