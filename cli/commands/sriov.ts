/**
 * `vfio sriov <pf>`: a PF's SR-IOV state (capability, VFs and their drivers); `--vfs N` creates N VFs (`--bind`:
 * on vfio-pci before any driver probes them), `--vfs 0` destroys them; refused (exit 3) while a VF is in use.
 *
 * ```sh
 * vfio sriov 0000:00:07.0
 * vfio sriov 0000:00:07.0 --vfs 2 --bind --dry-run
 * vfio sriov 0000:00:07.0 --vfs 0 --json
 * ```
 * @module
 */

import { VfsInUseError } from "../../lib/errors.ts";
import { hex } from "../../lib/hex.ts";
import { setVfCount, type SetVfCountResult, type SriovStatus, sriovStatus } from "../../lib/sysfs/sriov.ts";
import { printSteps, requireRootUnlessDry, testPauseHook, withDriverChange } from "../binding.ts";
import {
  type Command,
  EXIT,
  expectArgs,
  print,
  RefusedError,
  resolveDevice,
  UsageError,
  type Values,
  writeJson,
} from "../common.ts";

const USAGE = "vfio sriov <pf> [--vfs N [--bind] [--enable-sriov] [--force] [--dry-run]] [--json]";

function printStatus(s: SriovStatus): void {
  const id = s.vfDeviceId === null ? "?" : hex(s.vfDeviceId, 4);
  const autoprobe = s.driversAutoprobe === null ? "?" : s.driversAutoprobe ? "on" : "off";
  print(`${s.address}: ${s.numVfs}/${s.totalVfs} VFs, PF driver ${s.driver ?? "none"}, VF device ${id}`);
  print(`    first VF offset ${s.firstVfOffset ?? "?"}, stride ${s.vfStride ?? "?"}, drivers autoprobe ${autoprobe}`);
  const c = s.capability;
  if (c) {
    print(`    capability at ${hex(c.offset)}: initial ${c.initialVfs}, total ${c.totalVfs}, VF enable ${c.vfEnable}`);
  }
  for (const vf of s.vfs) {
    print(`  VF${vf.index} ${vf.address}  driver ${vf.driver ?? "-"}  group ${vf.iommuGroup ?? "-"}`);
  }
}

function vfCount(text: string): number {
  if (!/^\d+$/.test(text)) {
    throw new UsageError(`--vfs ${text} is not a number of VFs`, { remedy: "give a whole number, 0 destroys them" });
  }
  return Number(text);
}

/** The `sriov` command. */
export const sriov: Command = {
  name: "sriov",
  summary: "SR-IOV: a PF's VFs; create (--vfs N [--bind]) or destroy (--vfs 0) them",
  help: `usage: ${USAGE}

Shows a physical function's SR-IOV state: total and current VFs, the VF device id, offset and stride (from sysfs
and the capability in config space), and each VF's address, driver and IOMMU group. With --vfs, sets the number of
VFs (through 0 when changing a non-zero number, as the kernel requires); refused while a VF is open through VFIO
(the removal would block until it is closed) or used by its kernel driver (--force overrides the latter).
  --vfs N           make the PF have N VFs (0 destroys them)
  --bind            bind the new VFs to vfio-pci before any driver probes them (sriov_drivers_autoprobe is off
                    while they are created); \`vfio restore\` and \`--vfs 0\` undo it
  --enable-sriov    for a PF on vfio-pci: turn on vfio-pci's enable_sriov parameter (its user-space owner must
                    then set a VF token, which the VFs' users pass: openDevice(vf, { vfToken }))
  --force           destroy VFs although their kernel driver is in use (never while one is open through VFIO)
  --dry-run         print what would be done (the shell commands), do nothing`,
  options: {
    vfs: { type: "string" },
    bind: { type: "boolean" },
    "enable-sriov": { type: "boolean" },
    force: { type: "boolean" },
    "dry-run": { type: "boolean" },
  },
  run(positionals: string[], values: Values): number {
    expectArgs(positionals, 1, 1, USAGE);
    const pf = resolveDevice(positionals[0]).address;
    if (values.vfs === undefined) {
      if (values.bind || values["enable-sriov"] || values.force || values["dry-run"]) {
        throw new UsageError("--bind, --enable-sriov, --force and --dry-run go with --vfs N", { remedy: USAGE });
      }
      const s = sriovStatus(pf);
      if (values.json) writeJson(s);
      else printStatus(s);
      return EXIT.ok;
    }
    const n = vfCount(String(values.vfs));
    const dryRun = values["dry-run"] === true;
    requireRootUnlessDry("sriov --vfs", dryRun);
    const options = {
      dryRun,
      bind: values.bind === true,
      force: values.force === true,
      enableVfioSriov: values["enable-sriov"] === true,
      onStep: testPauseHook(),
    };
    let r: SetVfCountResult;
    try {
      r = withDriverChange(() => setVfCount(pf, n, options));
    } catch (e) {
      if (e instanceof VfsInUseError) throw new RefusedError(e.message, { cause: e }); // the message has the remedy
      throw e;
    }
    if (values.json) {
      writeJson({ ...r, status: dryRun ? undefined : sriovStatus(pf) });
      return EXIT.ok;
    }
    if (dryRun) {
      printSteps(pf, r.steps);
      for (const vf of r.vfs) print(`# VF${vf.index} will be ${vf.address}`);
      return EXIT.ok;
    }
    print(`${pf}: ${r.previousVfs} -> ${r.numVfs} VFs`);
    for (const b of r.binds) print(`  ${b.address}: ${b.alreadyBound ? "already on vfio-pci" : "bound to vfio-pci"}`);
    printStatus(sriovStatus(pf));
    return EXIT.ok;
  },
};
