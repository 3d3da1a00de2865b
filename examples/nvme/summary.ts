/**
 * Identify data as `nvme id-ctrl` / `nvme id-ns` print it: the fields people look at, hex where nvme-cli shows hex,
 * strings trimmed.
 *
 * ```ts
 * import type { Controller } from "./controller.ts";
 * import { controllerSummary } from "./summary.ts";
 * declare const ctrl: Controller;
 * const s = controllerSummary(await ctrl.identifyController());
 * console.log(s.mn, s.sn, s.mdts);
 * ```
 * @module
 */
import type { StructView } from "../../abi.ts";
import { hex } from "../../lib/hex.ts";
import type { LbaFormatInfo, NamespaceInfo } from "./namespace.ts";
import type { IdentifyController } from "./structs.ts";

/** An ASCII/UTF-8 identify string without its space or NUL padding. */
export function identifyText(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).replace(/[\0 ]+$/, "");
}

/** Identify Controller's main fields, printable. */
export interface ControllerSummary {
  vid: string;
  ssvid: string;
  sn: string;
  mn: string;
  fr: string;
  mdts: number;
  cntlid: string;
  ver: string;
  sqes: string;
  cqes: string;
  nn: number;
  subnqn: string;
}

/** Identify Controller data as `nvme id-ctrl` shows its main fields. */
export function controllerSummary(id: StructView<typeof IdentifyController.layout>): ControllerSummary {
  return {
    vid: hex(id.vid),
    ssvid: hex(id.ssvid),
    sn: identifyText(id.sn),
    mn: identifyText(id.mn),
    fr: identifyText(id.fr),
    mdts: id.mdts,
    cntlid: hex(id.cntlid),
    ver: hex(id.ver),
    sqes: hex(id.sqes),
    cqes: hex(id.cqes),
    nn: id.nn,
    subnqn: identifyText(id.subnqn),
  };
}

/** Identify Namespace's main fields, printable. */
export interface NamespaceSummary {
  nsze: string;
  ncap: string;
  nuse: string;
  nsfeat: string;
  nlbaf: number;
  flbas: string;
  lbafs: readonly LbaFormatInfo[];
  blockSize: number;
}

/** Identify Namespace data as `nvme id-ns` shows its main fields (the LBA formats as a list). */
export function namespaceSummary(info: NamespaceInfo): NamespaceSummary {
  const { id } = info;
  return {
    nsze: hex(id.nsze),
    ncap: hex(id.ncap),
    nuse: hex(id.nuse),
    nsfeat: hex(id.nsfeat),
    nlbaf: id.nlbaf,
    flbas: hex(id.flbas),
    lbafs: info.formats,
    blockSize: info.blockSize,
  };
}

/** The lines `nvme id-ns` prints for the LBA formats (`lbaf  0 : ms:0 lbads:9 rp:0 (in use)`). */
export function lbaFormatLines(info: NamespaceInfo): string[] {
  return info.formats.map((f, i) =>
    `lbaf ${String(i).padStart(2)} : ms:${f.ms} lbads:${f.lbads} rp:${f.rp}${i === info.formatIndex ? " (in use)" : ""}`
  );
}
