/**
 * `vfio shell <device>` (or `vfio shell --mdev <uuid>`): opens the device and reads JavaScript lines from stdin,
 * evaluated with `dev`, its BARs, the library and helpers in scope (`help()` lists them); `await` works. Neither
 * Deno's nor Bun's REPL can be given a scope, so this is a small line-oriented one over `node:readline`. The end of
 * input or `.exit` closes the device, which releases everything made on it (regions, IRQs, DMA buffers).
 *
 * ```sh
 * vfio shell 0000:00:03.0
 * vfio> bar0.read32(0)
 * 16777453 (0x10000ed)
 * vfio> hexdump(bar0, 0, 16)
 * ```
 * @module
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { inspect } from "node:util";
import type { Device } from "../../lib/device.ts";
import { VfioError } from "../../lib/errors.ts";
import { hex } from "../../lib/hex.ts";
import { openMediatedDevice } from "../../lib/open_mdev.ts";
import { type Command, EXIT, expectArgs, resolveDevice, type Values } from "../common.ts";
import { OPEN_HELP, OPEN_OPTIONS, openWithOptions } from "../open_device.ts";
import { HELP, shellScope } from "./shell_scope.ts";

/** The `shell` command. */
export const shell: Command = {
  name: "shell",
  summary: "an interactive session on an open device (dev, BARs, DMA, IRQs, hexdump)",
  help: `usage: vfio shell <device> | --mdev <uuid>

Opens the device and evaluates JavaScript lines from stdin with the device in scope; await works, and
"name = expression" or "const name = ..." keeps a value for later lines. Values print with their hex form.
${HELP}
  --mdev UUID  open a mediated device instead of a PCI address
${OPEN_HELP}`,
  options: { ...OPEN_OPTIONS, mdev: { type: "string" } },
  run(positionals: string[], values: Values): number {
    const mdev = values.mdev as string | undefined;
    let dev: Device;
    if (mdev !== undefined) {
      expectArgs(positionals, 0, 0, "vfio shell --mdev <uuid>");
      dev = openMediatedDevice(mdev);
    } else {
      expectArgs(positionals, 1, 1, "vfio shell <device> | --mdev <uuid>");
      dev = openWithOptions(resolveDevice(positionals[0]), values);
    }
    // The session outlives this call: main() returns, the session sets the exit code when it ends.
    void runSession(dev);
    return EXIT.ok;
  },
};

/** Evaluates input lines on `dev` until the end of input or `.exit`, then closes the device. */
export async function runSession(
  dev: Device,
  input: NodeJS.ReadableStream = process.stdin,
  output: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  const scope = shellScope(dev);
  const tty = (input as { isTTY?: boolean }).isTTY === true;
  const rl = createInterface({ input, output: tty ? output : undefined, terminal: tty, prompt: "vfio> " });
  const say = (s: string): void => void output.write(`${s}\n`);
  say(`${dev.name} open (${dev.iommu}); help() lists what is in scope, .exit leaves`);
  let failed = false;
  try {
    if (tty) rl.prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === ".exit" || line === "exit()") break;
      if (line !== "" && !line.startsWith("//")) {
        try {
          const value = await evaluate(line, scope);
          if (value !== undefined) say(show(value));
        } catch (e) {
          say(describe(e));
        }
      }
      if (tty) rl.prompt();
    }
  } catch (e) {
    failed = true;
    say(describe(e));
  } finally {
    rl.close();
    try {
      dev.close();
      say(`${dev.name} closed`);
    } catch (e) {
      failed = true;
      say(describe(e));
    }
  }
  if (failed) process.exitCode = EXIT.failure;
  if (input === process.stdin) process.stdin.pause();
}

// deno-lint-ignore no-explicit-any
type AsyncFn = (...args: any[]) => Promise<unknown>;
const AsyncFunction = (async () => {}).constructor as new (...args: string[]) => AsyncFn;

/**
 * Evaluates one line in `scope`: an expression's value, or a statement's `undefined`. A leading `const`/`let`/`var
 * name =` (or `name =` for a name in scope) stores into the scope, so later lines see it.
 */
export async function evaluate(line: string, scope: Record<string, unknown>): Promise<unknown> {
  const decl = /^(?:(?:const|let|var)\s+)([A-Za-z_$][\w$]*)\s*=(?!=)([\s\S]*?);?$/.exec(line);
  if (decl) {
    const value = await run(`return (${decl[2]});`, scope);
    scope[decl[1]] = value;
    return value;
  }
  let body: string;
  try {
    body = `return (${line.replace(/;\s*$/, "")}\n);`;
    new AsyncFunction("__scope", `with (__scope) { ${body} }`);
  } catch {
    body = line; // not an expression: a statement (if, for, a block ...)
  }
  return await run(body, scope);
}

function run(body: string, scope: Record<string, unknown>): Promise<unknown> {
  // Sloppy-mode function: `with` makes the scope's names (and assignments to them) plain identifiers.
  const fn = new AsyncFunction("__scope", `with (__scope) { ${body} }`);
  return fn(scope);
}

function show(value: unknown): string {
  if (typeof value === "number" && Number.isInteger(value)) {
    return value >= 0 ? `${value} (${hex(value)})` : String(value);
  }
  if (typeof value === "bigint") return `${value}n (${hex(value)})`;
  if (typeof value === "string") return value;
  const deno = (globalThis as { Deno?: { inspect(v: unknown, o?: object): string } }).Deno;
  return deno ? deno.inspect(value, { depth: 4, colors: false }) : inspect(value, { depth: 4, colors: false });
}

function describe(e: unknown): string {
  if (e instanceof VfioError) return `error: ${e.message}`; // the message ends with the remedy
  if (e instanceof Error) return `error: ${e.name}: ${e.message}`;
  return `error: ${String(e)}`;
}
