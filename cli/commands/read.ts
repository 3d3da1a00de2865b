/**
 * `vfio read <device> <bar> <offset> [--width 8|16|32|64]`: one register.
 *
 * ```sh
 * vfio read 0000:00:03.0 0 0x0   # 0x010000ed on QEMU's edu
 * ```
 * @module
 */

import { type Command, EXIT, expectArgs, print, resolveDevice, type Values, writeJson } from "../common.ts";
import { openWithOptions } from "../open_device.ts";
import {
  formatValue,
  openBar,
  parseRegisterPlace,
  readRegister,
  REGISTER_HELP,
  REGISTER_OPTIONS,
} from "../register.ts";

/** The `read` command. */
export const read: Command = {
  name: "read",
  summary: "read one register of a BAR",
  help: `usage: vfio read <device> <bar> <offset> [--width 8|16|32|64] [--json]

Reads one register (default 32 bits, little-endian as the device defines) at a byte offset of a BAR and prints it
as hex. The device must be on vfio-pci. Offsets must be aligned to the width and inside the BAR.
${REGISTER_HELP}`,
  options: REGISTER_OPTIONS,
  run(positionals: string[], values: Values): number {
    expectArgs(positionals, 3, 3, "vfio read <device> <bar> <offset> [--width 8|16|32|64]");
    const { width, bar: barIndex, offset } = parseRegisterPlace(positionals, values);
    const d = resolveDevice(positionals[0]);
    using dev = openWithOptions(d, values);
    const value = readRegister(openBar(dev, barIndex), offset, width);
    if (values.json) writeJson({ address: d.address, bar: barIndex, offset, width, value: formatValue(value, width) });
    else print(formatValue(value, width));
    return EXIT.ok;
  },
};
