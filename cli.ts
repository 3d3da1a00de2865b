#!/usr/bin/env bun
/**
 * The `vfio` command line as a module: `main(argv)` runs one command and returns its exit code, `COMMANDS` lists
 * them. Run as the main module it is the command itself (`deno run -A jsr:@vfio-ts/vfio/cli status`, or the
 * package's `vfio` bin).
 *
 * ```ts
 * import { main } from "@vfio-ts/vfio/cli";
 * const code = main(["status", "--json"]); // prints the devices on vfio-pci, on a kernel driver and on none
 * console.log("exit code", code);
 * ```
 *
 * @module
 */
import process from "node:process";
import { main } from "./cli/vfio.ts";

export type { Command, Options, Values } from "./cli/common.ts";
export { COMMANDS, main } from "./cli/vfio.ts";

if (import.meta.main) {
  process.exitCode = main(process.argv.slice(2));
}
