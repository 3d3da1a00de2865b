/**
 * `vfio write <device> <bar> <offset> <value> [--width 8|16|32|64]`: one register.
 *
 * ```sh
 * vfio write 0000:00:03.0 0 0x4 0x12345678   # edu's liveness register
 * ```
 * @module
 */

import { hex } from "../../lib/hex.ts";
import { type Command, EXIT, expectArgs, print, resolveDevice, type Values, writeJson } from "../common.ts";
import { openWithOptions } from "../open_device.ts";
import {
  formatValue,
  openBar,
  parseRegisterPlace,
  parseValue,
  REGISTER_HELP,
  REGISTER_OPTIONS,
  writeRegister,
} from "../register.ts";

/** The `write` command. */
export const write: Command = {
  name: "write",
  summary: "write one register of a BAR",
  help: `usage: vfio write <device> <bar> <offset> <value> [--width 8|16|32|64] [--json]

Writes one register (default 32 bits) at a byte offset of a BAR. The device must be on vfio-pci; the value must
fit the width. Writes to a live device have whatever effect the device gives them: know its register map.
${REGISTER_HELP}`,
  options: REGISTER_OPTIONS,
  run(positionals: string[], values: Values): number {
    expectArgs(positionals, 4, 4, "vfio write <device> <bar> <offset> <value> [--width 8|16|32|64]");
    const { width, bar: barIndex, offset } = parseRegisterPlace(positionals, values);
    const value = parseValue(positionals[3], width);
    const d = resolveDevice(positionals[0]);
    using dev = openWithOptions(d, values);
    writeRegister(openBar(dev, barIndex), offset, width, value);
    const shown = formatValue(value, width);
    if (values.json) writeJson({ address: d.address, bar: barIndex, offset, width, value: shown });
    else print(`wrote ${shown} to ${d.address} BAR${barIndex} + ${hex(offset)}`);
    return EXIT.ok;
  },
};
