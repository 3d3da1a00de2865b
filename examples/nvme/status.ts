/**
 * Completion status in words, and the error a failed command rejects with.
 *
 * ```ts
 * import { statusText } from "./status.ts";
 * statusText(0x4002); // "invalid field in command (status 0x4002, do not retry)"
 * ```
 * @module
 */
import { hex } from "../../lib/hex.ts";
import { VfioError } from "../../mod.ts";
import { getBits } from "./registers.ts";
import { Status } from "./structs.ts";

/** Generic (SCT 0) and command specific (SCT 1) status codes this layer names, by `SCT << 8 | SC`. */
const STATUS_NAMES: Record<number, string> = {
  0x001: "invalid command opcode",
  0x002: "invalid field in command",
  0x004: "data transfer error",
  0x006: "internal error",
  0x00b: "invalid namespace or format",
  0x013: "PRP offset invalid",
  0x080: "LBA out of range",
  0x101: "invalid queue identifier",
  0x102: "invalid queue size",
  0x108: "invalid interrupt vector",
};

/** A status field (the completion's `status >> 1`: SC, SCT, DNR) in words. */
export function statusText(status: number): string {
  const sc = getBits(status, Status.SC);
  const sct = getBits(status, Status.SCT);
  const name = STATUS_NAMES[(sct << 8) | sc] ?? `status code type ${sct}, code ${hex(sc)}`;
  return `${name} (status ${hex(status)}${getBits(status, Status.DNR) ? ", do not retry" : ""})`;
}

/**
 * A command the controller completed with a non-zero status.
 *
 * ```ts
 * import { NvmeCommandError } from "./status.ts";
 * const e = new NvmeCommandError("identify namespace", 0x400b);
 * e.status; // 0x400b
 * ```
 */
export class NvmeCommandError extends VfioError {
  /** The error class's name, `"NvmeCommandError"`. */
  override name = "NvmeCommandError";

  /** Builds the error for command `what` and its status field. */
  constructor(what: string, readonly status: number) {
    super(`${what} failed: ${statusText(status)}`);
  }
}
