/**
 * What `bind`, `unbind` and `restore` share: the in-use refusal, the root check, printing the steps, keeping
 * SIGINT/SIGTERM from cutting the sysfs steps short, and bad driver names or records as bad input (exit 2).
 *
 * ```ts
 * import { refuseInUse } from "./binding.ts";
 * refuseInUse("0000:00:05.0", "bind", false); // throws a RefusedError when its interface is up
 * ```
 * @module
 */

import process from "node:process";
import { InvalidDriverError, UntrustedRecordError } from "../lib/errors.ts";
import { describeStep, type SysfsStep } from "../lib/sysfs/bind.ts";
import { deviceUsers } from "../lib/sysfs/in_use.ts";
import { sleepSync } from "../lib/sysfs/lock.ts";
import { print, RefusedError, requireRoot, UsageError, warn } from "./common.ts";

/** Options of the three commands. */
export const BINDING_HELP = `  --dry-run    print what would be done (the shell commands), do nothing
  --force      go on although the system uses the device (interface up, mounted, swap)`;

/** Throws a {@linkcode RefusedError} naming every use of the device, unless `force`. */
export function refuseInUse(address: string, verb: string, force: boolean): void {
  if (force) return;
  const uses = deviceUsers(address);
  if (uses.length === 0) return;
  const up = uses.filter((u) => u.kind === "interface-up").map((u) => `ip link set ${u.name} down`);
  const fix = up.length > 0
    ? `take it down first: ${up.join("; ")}; or pass --force`
    : "stop using it, or pass --force";
  throw new RefusedError(`refusing to ${verb} ${address}: ${uses.map((u) => u.description).join("; ")}`, {
    remedy: fix,
  });
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
