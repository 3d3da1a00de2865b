/**
 * A namespace of an NVMe controller: its Identify Namespace data decoded (size, LBA formats, block size) and block
 * I/O through any I/O queue pair. A transfer is split into commands of at most the controller's MDTS, all submitted
 * at once (up to the queue's capacity), each with its own PRP entries.
 *
 * ```ts
 * import type { DmaBuffer } from "../../mod.ts";
 * import type { Controller } from "./controller.ts";
 * import { Namespace } from "./namespace.ts";
 * import type { QueuePair } from "./queue.ts";
 * declare const ctrl: Controller, io: QueuePair, buf: DmaBuffer;
 * const ns = new Namespace(ctrl, await ctrl.identifyNamespace(1));
 * await ns.read(io, buf, 0, 8); // blocks 0..7 into buf
 * ```
 * @module
 */
import { setImmediate } from "node:timers";
import type { StructView } from "../../abi.ts";
import { OutOfRangeError, UnsupportedError } from "../../mod.ts";
import type { Controller } from "./controller.ts";
import type { BusMemory } from "./prp.ts";
import { type Command, command, type Completion, type QueuePair } from "./queue.ts";
import { FLBAS_FORMAT, type IdentifyNamespace, LbaFormat, NvmOpcode, ReadWriteCommand } from "./structs.ts";

/** One LBA format. */
export interface LbaFormatInfo {
  /** Metadata bytes per block. */
  readonly ms: number;
  /** A block is 2^lbads bytes. */
  readonly lbads: number;
  /** Relative performance, 0 best. */
  readonly rp: number;
}

/** Identify Namespace, decoded. */
export interface NamespaceInfo {
  /** Namespace id. */
  readonly nsid: number;
  /** The raw Identify Namespace data, by field. */
  readonly id: StructView<typeof IdentifyNamespace.layout>;
  /** NSZE: the namespace's size in blocks. */
  readonly blocks: bigint;
  /** Every LBA format the namespace offers (NLBAF + 1). */
  readonly formats: readonly LbaFormatInfo[];
  /** Index of the format in use (FLBAS 3:0). */
  readonly formatIndex: number;
  /** Bytes per block of the format in use. */
  readonly blockSize: number;
}

/** Decodes Identify Namespace data of namespace `nsid`. */
export function namespaceInfo(nsid: number, id: StructView<typeof IdentifyNamespace.layout>): NamespaceInfo {
  const formats = Array.from({ length: id.nlbaf + 1 }, (_, i) => {
    const f = LbaFormat.view(id.lbaf, i * LbaFormat.size, LbaFormat.size);
    return { ms: f.ms, lbads: f.lbads, rp: f.rp & 3 };
  });
  const formatIndex = id.flbas & FLBAS_FORMAT;
  return { nsid, id, blocks: id.nsze, formats, formatIndex, blockSize: 2 ** formats[formatIndex].lbads };
}

/** Block I/O on one namespace. */
export class Namespace {
  /** The namespace's identity. */
  readonly info: NamespaceInfo;
  readonly #ctrl: Controller;

  /** Wraps an active namespace of `ctrl`; throws `UnsupportedError` when its LBA format carries metadata. */
  constructor(ctrl: Controller, info: NamespaceInfo) {
    if (info.formats[info.formatIndex].ms !== 0) {
      throw new UnsupportedError(`the namespace's LBA format carries metadata; this layer does not`);
    }
    this.#ctrl = ctrl;
    this.info = info;
  }

  /** Bytes per block. */
  get blockSize(): number {
    return this.info.blockSize;
  }

  /** Blocks per command: what MDTS allows. */
  get blocksPerCommand(): number {
    return Math.floor(this.#ctrl.maxTransferBytes / this.info.blockSize);
  }

  /** How many commands a transfer of `blocks` blocks takes. */
  commandsFor(blocks: number): number {
    return Math.ceil(blocks / this.blocksPerCommand);
  }

  /** Throws `OutOfRangeError` unless blocks `lba..lba+blocks-1` are in the namespace. */
  checkRange(lba: number, blocks: number): void {
    if (!Number.isSafeInteger(lba) || !Number.isSafeInteger(blocks) || lba < 0 || blocks < 1) {
      throw new OutOfRangeError(`blocks ${lba}+${blocks}: expected a block number >= 0 and a count >= 1`);
    }
    if (BigInt(lba + blocks) > this.info.blocks) {
      throw new OutOfRangeError(`blocks ${lba}..${lba + blocks - 1} are past the namespace end`);
    }
  }

  /** Reads `blocks` blocks from `lba` into `buf` at byte `offset`, on queue `q`; resolves with the command count. */
  read(q: QueuePair, buf: BusMemory, lba: number, blocks: number, offset = 0): Promise<number> {
    return this.#transfer(q, NvmOpcode.READ, buf, lba, blocks, offset);
  }

  /** Writes `blocks` blocks to `lba` from `buf` at byte `offset`, on queue `q`; resolves with the command count. */
  write(q: QueuePair, buf: BusMemory, lba: number, blocks: number, offset = 0): Promise<number> {
    return this.#transfer(q, NvmOpcode.WRITE, buf, lba, blocks, offset);
  }

  /** Flush: what the controller holds in a volatile cache goes to the medium. */
  async flush(q: QueuePair): Promise<void> {
    await q.submit(command(ReadWriteCommand, "flush", { opc: NvmOpcode.FLUSH, nsid: this.info.nsid }));
  }

  async #transfer(
    q: QueuePair,
    opc: number,
    buffer: BusMemory,
    lba: number,
    blocks: number,
    offset: number,
  ): Promise<number> {
    this.checkRange(lba, blocks);
    const size = this.info.blockSize;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + blocks * size > buffer.size) {
      throw new OutOfRangeError(
        `${blocks} blocks of ${size} bytes at byte ${offset}: past the end of the ${buffer.size}-byte buffer`,
      );
    }
    const verb = opc === NvmOpcode.READ ? "read" : "write";
    const commands = [];
    for (let done = 0; done < blocks; done += this.blocksPerCommand) {
      const n = Math.min(this.blocksPerCommand, blocks - done);
      const slba = BigInt(lba + done);
      const data = { buffer, offset: offset + done * size, length: n * size };
      commands.push(command(ReadWriteCommand, `${verb} of blocks ${slba}+${n} on queue ${q.id}`, {
        opc,
        nsid: this.info.nsid,
        slba,
        nlb: n - 1,
      }, data));
    }
    await submitAll(q, commands);
    return commands.length;
  }
}

/**
 * Submits every command on `q`, as many at once as the queue has room for; resolves with their completions in order,
 * or rejects with the first failure once none is in flight any more.
 */
export async function submitAll(q: QueuePair, commands: readonly Command[]): Promise<Completion[]> {
  const all: Promise<Completion>[] = [];
  const unsettled = new Set<Promise<Completion>>();
  let failure: { e: unknown } | undefined;
  for (const cmd of commands) {
    while (q.inFlight >= q.capacity && !failure) {
      if (unsettled.size) await Promise.race(unsettled).catch(() => {});
      else await new Promise((r) => setImmediate(r)); // the queue is full of someone else's commands
    }
    if (failure) break;
    const p = q.submit(cmd);
    unsettled.add(p);
    p.then(() => unsettled.delete(p), (e) => {
      unsettled.delete(p);
      failure ??= { e };
    });
    all.push(p);
  }
  const settled = await Promise.allSettled(all);
  if (failure) throw failure.e;
  return settled.map((s) => (s as PromiseFulfilledResult<Completion>).value);
}
