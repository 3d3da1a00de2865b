/**
 * The `vfio` command line: devices, IOMMU groups, binding to vfio-pci and back, no-IOMMU mode, what VFIO reports
 * about a device, its config space, and single register reads and writes. Built on the vfio-ts library; runs on
 * Deno and Bun.
 *
 * ```sh
 * deno run -A cli/vfio.ts status
 * bun cli/vfio.ts read 0000:00:03.0 0 0x0
 * ```
 *
 * Exit codes: 0 done, 1 failed, 2 bad command line, 3 refused (device in use; `--force` overrides).
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { VfioError } from "../lib/errors.ts";
import { hexDigits } from "../lib/hex.ts";
import { bind } from "./commands/bind.ts";
import { config } from "./commands/config.ts";
import { groups } from "./commands/groups.ts";
import { info } from "./commands/info.ts";
import { mdev } from "./commands/mdev.ts";
import { noiommu } from "./commands/noiommu.ts";
import { read } from "./commands/read.ts";
import { restore } from "./commands/restore.ts";
import { shell } from "./commands/shell.ts";
import { sriov } from "./commands/sriov.ts";
import { status } from "./commands/status.ts";
import { unbind } from "./commands/unbind.ts";
import { write } from "./commands/write.ts";
import { type Command, EXIT, print, RefusedError, UsageError } from "./common.ts";

/** Every command, in the order `vfio --help` lists them. */
export const COMMANDS: readonly Command[] = [
  status,
  groups,
  bind,
  unbind,
  restore,
  noiommu,
  info,
  config,
  read,
  write,
  mdev,
  shell,
  sriov,
];

const USAGE = `usage: vfio <command> [options] [arguments]

${COMMANDS.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`).join("\n")}

Every command takes --help and --json. Devices are PCI addresses (0000:00:03.0 or 00:03.0) or vendor:device ids
(8086:10d3). Exit codes: 0 done, 1 failed, 2 bad command line, 3 refused (device in use; --force overrides).`;

/** Control characters from the command line (a newline in an argument) shown escaped: an error stays one line. */
function oneLine(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${hexDigits(c.charCodeAt(0), 2)}`);
}

function errorExit(e: unknown, name: string): number {
  if (e instanceof VfioError) {
    process.stderr.write(`vfio: ${oneLine(e.message)}\n`);
    return e instanceof UsageError ? EXIT.usage : e instanceof RefusedError ? EXIT.refused : EXIT.failure;
  }
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")) {
    const first = (e as Error).message.split("\n")[0].split(". ")[0].replace(/\.$/, "");
    process.stderr.write(`vfio: ${oneLine(first)} (see vfio ${oneLine(name)} --help)\n`);
    return EXIT.usage;
  }
  process.stderr.write(`vfio: unexpected error: ${oneLine((e as Error)?.message ?? String(e))} (please report it)\n`);
  return EXIT.failure;
}

/**
 * Runs the command line `argv` (without the runtime and script) and returns the exit code.
 *
 * ```ts
 * import { main } from "@vfio-ts/vfio/cli";
 * const code = main(["status", "--json"]);
 * ```
 */
export function main(argv: readonly string[]): number {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    print(USAGE);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = COMMANDS.find((c) => c.name === name);
  try {
    if (!command) {
      throw new UsageError(`unknown command "${name}"`, {
        remedy: `commands: ${COMMANDS.map((c) => c.name).join(", ")}`,
      });
    }
    const { values, positionals } = parseArgs({
      args: [...rest],
      options: { ...command.options, help: { type: "boolean", short: "h" }, json: { type: "boolean" } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      print(command.help);
      return EXIT.ok;
    }
    return command.run(positionals, values);
  } catch (e) {
    return errorExit(e, name);
  }
}

if (import.meta.main) {
  process.exitCode = main(process.argv.slice(2));
}
