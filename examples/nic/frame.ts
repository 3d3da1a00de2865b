/**
 * Test frames: Ethernet + IPv4 + UDP with a sequence number and a payload that depends on it, so a receiver can
 * tell that every frame arrived once, in order, and intact.
 *
 * Payload (after the 42 bytes of headers): sequence number (u32, big-endian), then byte `i` = `(seq + i) & 0xff`.
 * The UDP checksum is real (computed from precomputed partial sums, so writing a frame costs one copy); the
 * receiver compares every payload byte and the checksum field.
 *
 * ```ts
 * import { FrameWriter, SequenceChecker } from "./frame.ts";
 * const w = new FrameWriter({ size: 60, src: new Uint8Array(6), dst: new Uint8Array(6).fill(0xff) });
 * const buf = new Uint8Array(2048);
 * w.write(buf, 7);
 * const c = new SequenceChecker(60);
 * c.check(buf, 60); // false: the checker expects sequence number 0 first
 * ```
 * @module
 */
import { hex } from "../../lib/hex.ts";
import { VfioError } from "../../mod.ts";

/** The UDP source port of test frames unless {@linkcode FrameSpec.srcPort} says otherwise. */
export const DEFAULT_SRC_PORT = 42424;
/** Ethernet (14) + IPv4 (20) + UDP (8). */
export const HEADERS = 42;
/** The smallest frame (without FCS) with room for the sequence number. */
export const MIN_SIZE = 60;
const SRC_IP = [10, 0, 0, 1];
const DST_IP = [10, 0, 0, 2];
const SRC_PORT = DEFAULT_SRC_PORT;
const DST_PORT = 4242;
const IPPROTO_UDP = 17;
const SEQ_AT = HEADERS; // payload offset of the sequence number
const PATTERN_AT = HEADERS + 4;
const UDP_CSUM_AT = 40;

// TABLE[k] = k & 0xff: the pattern for `seq` is TABLE[(seq & 0xff) ...], one copy per frame.
const TABLE = Uint8Array.from({ length: 256 + 2048 }, (_, k) => k & 0xff);

/** Ones' complement sum of big-endian 16-bit words of `b[from..to)` (unfolded). */
function sum16(b: ArrayLike<number>, from: number, to: number): number {
  let s = 0, i = from;
  for (; i + 1 < to; i += 2) s += (b[i] << 8) | b[i + 1];
  if (i < to) s += b[i] << 8;
  return s;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** What the frames look like. */
export interface FrameSpec {
  /** Frame size in bytes without the FCS (60..1514). */
  size: number;
  /** Source and destination MAC addresses (6 bytes each). */
  src: Uint8Array;
  dst: Uint8Array;
  /** UDP source port (default 42424): distinct ports make distinct flows, which RSS spreads over receive queues. */
  srcPort?: number;
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < MIN_SIZE || size > 1514) {
    throw new VfioError(`frame size ${size} is out of range`, { remedy: `use ${MIN_SIZE}..1514 (bytes without FCS)` });
  }
}

/** Partial sums of the pattern for each of the 256 starting bytes, for a payload of `size - HEADERS` bytes. */
function patternSums(size: number): Float64Array {
  const sums = new Float64Array(256);
  for (let s = 0; s < 256; s++) sums[s] = sum16(TABLE, s, s + size - PATTERN_AT);
  return sums;
}

/**
 * Writes numbered test frames: headers and the payload's partial checksums are precomputed, so {@linkcode write}
 * is one copy per frame.
 *
 * ```ts
 * import { FrameWriter } from "./frame.ts";
 * const w = new FrameWriter({ size: 128, src: new Uint8Array(6), dst: new Uint8Array(6).fill(0xff) });
 * const frame = new Uint8Array(128);
 * w.write(frame, 0);
 * ```
 */
export class FrameWriter {
  readonly size: number;
  readonly #template: Uint8Array;
  readonly #sums: Float64Array;
  readonly #base: number; // pseudo-header + UDP header (checksum 0), unfolded

  constructor(spec: FrameSpec) {
    checkSize(spec.size);
    this.size = spec.size;
    const t = this.#template = new Uint8Array(HEADERS);
    t.set(spec.dst, 0);
    t.set(spec.src, 6);
    t[12] = 0x08; // EtherType IPv4
    const ipLen = spec.size - 14, udpLen = ipLen - 20;
    t.set([0x45, 0, ipLen >> 8, ipLen & 0xff, 0, 0, 0x40, 0, 64, IPPROTO_UDP, 0, 0, ...SRC_IP, ...DST_IP], 14);
    const ipSum = ~fold(sum16(t, 14, 34)) & 0xffff;
    t[24] = ipSum >> 8;
    t[25] = ipSum & 0xff;
    const srcPort = spec.srcPort ?? SRC_PORT;
    t.set([srcPort >> 8, srcPort & 0xff, DST_PORT >> 8, DST_PORT & 0xff, udpLen >> 8, udpLen & 0xff, 0, 0], 34);
    this.#base = sum16(SRC_IP, 0, 4) + sum16(DST_IP, 0, 4) + IPPROTO_UDP + udpLen + sum16(t, 34, 42);
    this.#sums = patternSums(spec.size);
  }

  /** The UDP checksum of the frame with sequence number `seq`. */
  udpChecksum(seq: number): number {
    const c = ~fold(this.#base + (seq >>> 16) + (seq & 0xffff) + this.#sums[seq & 0xff]) & 0xffff;
    return c === 0 ? 0xffff : c;
  }

  /** Writes frame `seq` (size {@linkcode size}) at the start of `buf`. */
  write(buf: Uint8Array, seq: number): void {
    buf.set(this.#template, 0);
    buf[SEQ_AT] = seq >>> 24;
    buf[SEQ_AT + 1] = (seq >>> 16) & 0xff;
    buf[SEQ_AT + 2] = (seq >>> 8) & 0xff;
    buf[SEQ_AT + 3] = seq & 0xff;
    const s = seq & 0xff;
    buf.set(TABLE.subarray(s, s + this.size - PATTERN_AT), PATTERN_AT);
    const c = this.udpChecksum(seq);
    buf[UDP_CSUM_AT] = c >> 8;
    buf[UDP_CSUM_AT + 1] = c & 0xff;
  }
}

/**
 * Checks received test frames: each must be the next sequence number, of the expected size, with intact headers,
 * payload and checksum. Frames that are not test frames (other traffic) are counted apart.
 *
 * ```ts
 * import { SequenceChecker } from "./frame.ts";
 * const c = new SequenceChecker(60);
 * declare const frame: Uint8Array;
 * if (!c.check(frame, 60)) console.log(c.firstError);
 * ```
 */
export class SequenceChecker {
  readonly size: number;
  readonly #writer: FrameWriter;
  readonly #ref: Uint8Array;
  /** The sequence number expected next. */
  expected = 0;
  /** Frames that arrived right: the expected number, intact. */
  good = 0;
  /** Sequence numbers skipped over (frames lost, or reordered later). */
  lost = 0;
  /** Frames with a number already seen (duplicates, or late ones). */
  late = 0;
  /** Test frames with a wrong length, header, payload byte or checksum. */
  corrupt = 0;
  /** Frames that are not test frames. */
  foreign = 0;
  /** What went wrong first, for the report. */
  firstError: string | null = null;

  /** Checks frames of `size` bytes from UDP source port `srcPort` (one flow; default 42424). */
  constructor(size: number, srcPort?: number) {
    this.size = size;
    this.#writer = new FrameWriter({ size, src: new Uint8Array(6), dst: new Uint8Array(6), srcPort });
    this.#ref = new Uint8Array(size);
    this.#writer.write(this.#ref, 0);
  }

  /**
   * Ends the count once `sent` frames have been sent and no more will arrive: the ones after the last that arrived
   * never did, and count as lost too (a gap is only seen when a later frame arrives).
   */
  finish(sent: number): void {
    if (sent <= this.expected) return;
    this.#error(`frames ${this.expected}..${sent - 1} never arrived`);
    this.lost += sent - this.expected;
    this.expected = sent;
  }

  /** Frames accounted for (good + lost + late + corrupt). */
  get seen(): number {
    return this.good + this.lost + this.late + this.corrupt;
  }

  #error(what: string): false {
    this.firstError ??= what;
    return false;
  }

  /** Checks one frame; returns true when it is the expected one, intact. */
  check(f: Uint8Array, length: number): boolean {
    if (
      length < HEADERS || f[12] !== 0x08 || f[13] !== 0 || f[23] !== IPPROTO_UDP || f[36] !== (DST_PORT >> 8) ||
      f[37] !== (DST_PORT & 0xff)
    ) {
      this.foreign++;
      return false;
    }
    const seq = ((f[SEQ_AT] << 24) | (f[SEQ_AT + 1] << 16) | (f[SEQ_AT + 2] << 8) | f[SEQ_AT + 3]) >>> 0;
    if (length !== this.size) {
      this.corrupt++;
      return this.#error(`frame ${seq}: ${length} bytes, expected ${this.size}`);
    }
    const ref = this.#ref;
    for (let i = 14; i < SEQ_AT; i++) {
      if (f[i] !== ref[i] && i !== UDP_CSUM_AT && i !== UDP_CSUM_AT + 1) {
        this.corrupt++;
        return this.#error(
          `frame ${seq}: header byte ${i} is ${hex(f[i])}, expected ${hex(ref[i])}`,
        );
      }
    }
    const s = seq & 0xff;
    for (let i = PATTERN_AT; i < length; i++) {
      if (f[i] !== TABLE[s + i - PATTERN_AT]) {
        this.corrupt++;
        return this.#error(`frame ${seq}: payload byte ${i - HEADERS} differs`);
      }
    }
    if (((f[UDP_CSUM_AT] << 8) | f[UDP_CSUM_AT + 1]) !== this.#writer.udpChecksum(seq)) {
      this.corrupt++;
      return this.#error(`frame ${seq}: wrong UDP checksum`);
    }
    if (seq < this.expected) {
      this.late++;
      return this.#error(`frame ${seq} arrived after ${this.expected - 1} (duplicate or out of order)`);
    }
    if (seq > this.expected) {
      this.#error(`frames ${this.expected}..${seq - 1} missing when ${seq} arrived`);
      this.lost += seq - this.expected;
      this.expected = seq + 1;
      this.good++;
      return false;
    }
    this.expected++;
    this.good++;
    return true;
  }
}
