/**
 * The VF side of the 82576 PF–VF mailbox (82576 datasheet 7.8.2.9): how a virtual function asks the physical
 * function's driver (here the kernel's igb) to reset it, to give it its MAC address, to filter multicast addresses
 * and to change the promiscuous modes. The messages are those of Linux's igb/igbvf (`e1000_mbx.h`): word 0 carries
 * the message type in its low 16 bits, extra information in bits 23:16, and the PF's answer in its top bits (ACK,
 * NACK, CTS = "clear to send": the PF has seen this VF's reset and takes configuration requests).
 *
 * One mailbox per VF: the VF's V2PMAILBOX register and 16 words of mailbox memory (VMBMEM) that the PF sees at its
 * own offset for this VF. A message is written into the memory while the VF holds the buffer (VFU), then REQ tells
 * the PF; the PF acknowledges it (PFACK), writes its answer and signals it (PFSTS); the VF reads it and
 * acknowledges (ACK). PFSTS, PFACK and RSTD clear when V2PMAILBOX is read, so every read is remembered here.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { VfMailbox } from "./igbvf_mbx.ts";
 * using dev = openDevice("0000:00:13.0"); // an igb VF on vfio-pci, its PF on the kernel's igb (interface up)
 * const mbx = new VfMailbox(dev.bar(0));
 * dev.bar(0).write32(0, 1 << 26); // CTRL.RST: the PF hears of the VF's reset
 * console.log(mbx.reset().mac); // the PF's ACK carries the MAC address it gives the VF
 * ```
 * @module
 */
import { hex } from "../../lib/hex.ts";
import { type Region, VfioError } from "../../mod.ts";
import { formatMac } from "./nic.ts";

// VF registers (82576 datasheet 8.28)
/** VF-to-PF mailbox control (V2PMAILBOX0). */
export const V2PMAILBOX = 0x0c40;
/** VF mailbox memory (VMBMEM): {@linkcode MAILBOX_WORDS} 32-bit words. */
export const VMBMEM = 0x0800;
/** Words in a mailbox message. */
export const MAILBOX_WORDS = 16;

// V2PMAILBOX bits
/** VF → PF: a message is in the buffer (request for the PF). */
export const V2PMAILBOX_REQ = 1 << 0;
/** VF → PF: the PF's message was received. */
export const V2PMAILBOX_ACK = 1 << 1;
/** The VF owns the buffer. */
export const V2PMAILBOX_VFU = 1 << 2;
/** The PF owns the buffer. */
export const V2PMAILBOX_PFU = 1 << 3;
/** The PF wrote a message (clears on read). */
export const V2PMAILBOX_PFSTS = 1 << 4;
/** The PF acknowledged the VF's message (clears on read). */
export const V2PMAILBOX_PFACK = 1 << 5;
/** The PF is resetting. */
export const V2PMAILBOX_RSTI = 1 << 6;
/** The PF has finished a reset (clears on read). */
export const V2PMAILBOX_RSTD = 1 << 7;
const READ_TO_CLEAR = V2PMAILBOX_PFSTS | V2PMAILBOX_PFACK | V2PMAILBOX_RSTD;

// Message word 0
/** Message types (low 16 bits of word 0), from Linux's e1000_mbx.h. */
export const VfMessage = {
  /** VF → PF: "I have reset"; the answer carries the VF's MAC address in words 1–2. */
  RESET: 0x01,
  /** VF → PF: use this MAC address (words 1–2). */
  SET_MAC_ADDR: 0x02,
  /** VF → PF: multicast filter; bits 23:16 = count (≤ 30), then 12-bit hashes as 16-bit halves from word 1. */
  SET_MULTICAST: 0x03,
  /** VF → PF: VLAN filter. */
  SET_VLAN: 0x04,
  /** VF → PF: long packets, word 1 = largest frame. */
  SET_LPE: 0x05,
  /** VF → PF: promiscuous modes in bits 23:16 ({@linkcode PROMISC_UNICAST}, {@linkcode PROMISC_MULTICAST}). */
  SET_PROMISC: 0x06,
  /** PF → VF: a control message (the PF pings its VFs after its own reset or a link change). */
  PF_CONTROL: 0x0100,
} as const;
/** The PF accepted the request. */
export const MSGTYPE_ACK = 0x80000000;
/** The PF refused the request. */
export const MSGTYPE_NACK = 0x40000000;
/** The PF has seen this VF's reset and takes configuration requests. */
export const MSGTYPE_CTS = 0x20000000;
/** Extra information of word 0 (bits 23:16). */
export const MSGINFO_SHIFT = 16;
/** SET_PROMISC: every unicast frame (the kernel's igb refuses it). */
export const PROMISC_UNICAST = 0x01 << MSGINFO_SHIFT;
/** SET_PROMISC: every multicast frame. */
export const PROMISC_MULTICAST = 0x02 << MSGINFO_SHIFT;
/** Most multicast hashes one SET_MULTICAST carries. */
export const MAX_MULTICAST = 30;

const TYPE_MASK = 0xffff;
const NAMES: Record<number, string> = Object.fromEntries(Object.entries(VfMessage).map(([k, v]) => [v, k]));

/** The name of a message type, `SET_MAC_ADDR`, or its hex value. */
export function messageName(word0: number): string {
  const t = word0 & TYPE_MASK;
  return NAMES[t] ?? hex(t);
}

/**
 * The PF answered a request with NACK: it does not allow what the VF asked (a MAC address the administrator set
 * differently, unicast promiscuous mode with the kernel's igb, ...).
 *
 * ```ts
 * import { PfRefusedError } from "./igbvf_mbx.ts";
 * const e = new PfRefusedError("SET_PROMISC", 0x40020006, "see the PF's kernel log");
 * console.log(e.request, e.message);
 * ```
 */
export class PfRefusedError extends VfioError {
  override name = "PfRefusedError";
  /** The refused message type, e.g. `SET_PROMISC`. */
  readonly request: string;
  /** Word 0 of the PF's answer. */
  readonly answer: number;

  constructor(request: string, answer: number, remedy: string) {
    super(`the PF refused ${request} (answer ${hex(answer >>> 0)})`, { remedy });
    this.request = request;
    this.answer = answer;
  }
}

/**
 * The PF did not take or answer a message in time (its interface is down, or it ignores this VF for now).
 *
 * ```ts
 * import { MailboxTimeoutError } from "./igbvf_mbx.ts";
 * const e = new MailboxTimeoutError("igbvf mailbox: no answer", { remedy: "ip link set eth0 up" });
 * console.log(e.name, e.message);
 * ```
 */
export class MailboxTimeoutError extends VfioError {
  override name = "MailboxTimeoutError";
}

/** Options of {@linkcode VfMailbox}. */
export interface VfMailboxOptions {
  /** How long to wait for the PF at each step (default 2000 ms). */
  timeoutMs?: number;
  /** Says where the PF is, for error messages (default: a generic hint). */
  pfHint?: string;
}

/** What the PF answered to the VF's reset. */
export interface ResetAnswer {
  /** The MAC address the PF gave the VF, or `null` when it answered NACK (no address assigned). */
  mac: string | null;
  /** Word 0 of the answer. */
  answer: number;
}

/** The 12-bit multicast hash the PF's multicast table uses (filter type 0: bits 47:36 of the address). */
export function multicastHash(mac: ArrayLike<number>): number {
  return ((mac[4] >> 4) | (mac[5] << 4)) & 0xfff;
}

/**
 * One VF's mailbox to its PF, over the VF's BAR0.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { PROMISC_MULTICAST, VfMailbox, VfMessage } from "./igbvf_mbx.ts";
 * using dev = openDevice("0000:00:13.0");
 * const mbx = new VfMailbox(dev.bar(0));
 * mbx.request([VfMessage.SET_PROMISC | PROMISC_MULTICAST]); // throws PfRefusedError on NACK
 * ```
 */
export class VfMailbox {
  readonly #bar: Region;
  readonly #timeoutMs: number;
  readonly #hint: string;
  #bits = 0; // read-to-clear bits seen and not consumed yet
  /** Whether the PF said CTS in its last answer (it has seen this VF's reset). */
  clearToSend = false;
  /** Messages sent and received (PF control messages included). */
  sent = 0;
  /** Requests sent again after a new RESET because the PF did not answer them. */
  retries = 0;
  received = 0;

  constructor(bar: Region, options: VfMailboxOptions = {}) {
    this.#bar = bar;
    this.#timeoutMs = options.timeoutMs ?? 2000;
    this.#hint = options.pfHint ??
      "the kernel's igb answers only while the PF's interface is up: ip link set <pf-interface> up";
  }

  /** Reads V2PMAILBOX, remembering the bits the read clears. */
  #read(): number {
    const v = this.#bar.read32(V2PMAILBOX);
    this.#bits |= v & READ_TO_CLEAR;
    return v;
  }

  /** Whether `bit` (read-to-clear) was set since it was last taken; takes it. */
  #take(bit: number): boolean {
    this.#read();
    if ((this.#bits & bit) === 0) return false;
    this.#bits &= ~bit;
    return true;
  }

  #timeout(what: string): MailboxTimeoutError {
    return new MailboxTimeoutError(`igbvf mailbox: no ${what} from the PF within ${this.#timeoutMs} ms`, {
      remedy: this.#hint,
    });
  }

  #wait(bit: number, what: string): void {
    const t0 = performance.now();
    while (!this.#take(bit)) {
      if (performance.now() - t0 > this.#timeoutMs) throw this.#timeout(what);
    }
  }

  /** Takes the buffer (VFU); the device grants it only while the PF does not hold it (PFU). */
  #lock(): void {
    const t0 = performance.now();
    for (;;) {
      this.#bar.write32(V2PMAILBOX, V2PMAILBOX_VFU);
      if (this.#read() & V2PMAILBOX_VFU) return;
      if (performance.now() - t0 > this.#timeoutMs) throw this.#timeout("free mailbox buffer (PFU stays set)");
    }
  }

  /** Whether the PF has a message waiting (PFSTS), without taking it. */
  pending(): boolean {
    this.#read();
    return (this.#bits & V2PMAILBOX_PFSTS) !== 0;
  }

  /** Whether the PF signalled a reset (RSTI now, or RSTD since the last look); takes RSTD. */
  pfReset(): boolean {
    const v = this.#read();
    const done = (this.#bits & V2PMAILBOX_RSTD) !== 0;
    this.#bits &= ~V2PMAILBOX_RSTD;
    return done || (v & V2PMAILBOX_RSTI) !== 0;
  }

  /** Sends a message (1–16 words) and waits until the PF acknowledges that it has read it (PFACK). */
  send(words: ArrayLike<number>): void {
    if (words.length < 1 || words.length > MAILBOX_WORDS) {
      throw new VfioError(`igbvf mailbox: a message of ${words.length} words`, { remedy: "send 1 to 16 words" });
    }
    this.#lock();
    this.#bits &= ~(V2PMAILBOX_PFACK | V2PMAILBOX_PFSTS); // the buffer is overwritten: older news is moot
    for (let i = 0; i < words.length; i++) this.#bar.write32(VMBMEM + 4 * i, words[i] >>> 0);
    this.#bar.write32(V2PMAILBOX, V2PMAILBOX_REQ); // releases VFU and interrupts the PF
    this.sent++;
    // The PF reads and acknowledges in one interrupt handler, so no PFACK means it has not read the message: an
    // interrupt that coalesced with an earlier one (the VF's own reset) is raised again every 100 ms.
    const t0 = performance.now();
    let last = t0;
    while (!this.#take(V2PMAILBOX_PFACK)) {
      const now = performance.now();
      if (now - t0 > this.#timeoutMs) throw this.#timeout(`acknowledgement of ${messageName(words[0])}`);
      if (now - last > 100) {
        this.#bar.write32(V2PMAILBOX, V2PMAILBOX_REQ);
        last = now;
      }
    }
  }

  /** Waits for the PF's next message (PFSTS), reads all 16 words and acknowledges it. */
  receive(): Uint32Array {
    this.#wait(V2PMAILBOX_PFSTS, "message");
    this.#lock();
    const out = new Uint32Array(MAILBOX_WORDS);
    for (let i = 0; i < MAILBOX_WORDS; i++) out[i] = this.#bar.read32(VMBMEM + 4 * i);
    this.#bar.write32(V2PMAILBOX, V2PMAILBOX_ACK); // releases VFU
    this.received++;
    return out;
  }

  /**
   * Sends a request and returns the PF's answer to it (word 0 = the request's type with ACK or NACK), passing over
   * PF control messages that arrive meanwhile. A NACK throws {@linkcode PfRefusedError}.
   */
  request(words: ArrayLike<number>, refused = "the PF does not allow it; see its kernel log (dmesg)"): Uint32Array {
    try {
      return this.#exchange(words, refused);
    } catch (e) {
      // The kernel's igb drops, without an answer, what a VF sends while it does not consider it clear to send (a
      // reset event it handled late): as Linux's igbvf does, reset the handshake and ask once more.
      if (!(e instanceof MailboxTimeoutError) || (words[0] & TYPE_MASK) === VfMessage.RESET) throw e;
      this.retries++;
      try {
        this.#exchange([VfMessage.RESET], refused);
      } catch (r) {
        if (!(r instanceof PfRefusedError)) throw r; // NACK: no MAC address, still clear to send
      }
      return this.#exchange(words, refused);
    }
  }

  #exchange(words: ArrayLike<number>, refused: string): Uint32Array {
    this.send(words);
    const type = words[0] & TYPE_MASK;
    const t0 = performance.now();
    for (;;) {
      const answer = this.receive();
      if ((answer[0] & TYPE_MASK) === type && answer[0] & (MSGTYPE_ACK | MSGTYPE_NACK)) {
        this.clearToSend = (answer[0] & MSGTYPE_CTS) !== 0 || type === VfMessage.RESET;
        if (answer[0] & MSGTYPE_NACK) throw new PfRefusedError(messageName(type), answer[0], refused);
        return answer;
      }
      if (performance.now() - t0 > this.#timeoutMs) throw this.#timeout(`answer to ${messageName(type)}`);
    }
  }

  /**
   * The reset handshake, after the VF set CTRL.RST: passes the PF's reset indication, sends RESET and returns the
   * MAC address in the PF's answer (ACK), or `null` when the PF has none for this VF (NACK).
   */
  reset(): ResetAnswer {
    const t0 = performance.now();
    while (this.#read() & V2PMAILBOX_RSTI) { // the PF is itself resetting
      if (performance.now() - t0 > this.#timeoutMs) throw this.#timeout("end of the PF's reset (RSTI)");
    }
    this.#bits = 0; // a fresh start: the answers to anything before the reset are void
    try {
      const a = this.request([VfMessage.RESET]);
      return { mac: formatMac(macBytes(a)), answer: a[0] };
    } catch (e) {
      if (e instanceof PfRefusedError) return { mac: null, answer: e.answer };
      throw e;
    }
  }

  /** Asks the PF to use `mac` (six bytes) for this VF. */
  setMac(mac: ArrayLike<number>): void {
    this.request(
      [VfMessage.SET_MAC_ADDR, ...macWords(mac)],
      "the PF refuses a MAC address its administrator set differently (ip link set <pf> vf N mac ...) or an " +
        "invalid one; see dmesg",
    );
  }

  /** Sets the multicast filter to `macs` (at most {@linkcode MAX_MULTICAST}; an empty list clears it). */
  setMulticast(macs: readonly ArrayLike<number>[]): void {
    if (macs.length > MAX_MULTICAST) {
      throw new VfioError(`igbvf: ${macs.length} multicast addresses`, {
        remedy: `give at most ${MAX_MULTICAST}, or ask for multicast promiscuous mode`,
      });
    }
    const words = new Uint32Array(1 + Math.ceil(macs.length / 2));
    words[0] = VfMessage.SET_MULTICAST | (macs.length << MSGINFO_SHIFT);
    const halves = new Uint16Array(words.buffer, 4);
    macs.forEach((m, i) => halves[i] = multicastHash(m));
    this.request(words);
  }

  /** Sets the promiscuous modes (none: only the VF's MAC, broadcast and its multicast filter). */
  setPromiscuous(modes: { unicast?: boolean; multicast?: boolean }): void {
    const info = (modes.unicast ? PROMISC_UNICAST : 0) | (modes.multicast ? PROMISC_MULTICAST : 0);
    this.request(
      [VfMessage.SET_PROMISC | info],
      modes.unicast
        ? "the kernel's igb gives VFs multicast promiscuous mode only, never unicast"
        : "see the PF's kernel log (dmesg)",
    );
  }
}

/** The six MAC bytes of words 1–2 of a message (byte 0 = low byte of word 1). */
function macBytes(words: Uint32Array): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset + 4, 6).slice();
}

/** Words 1–2 of a message carrying `mac`. */
function macWords(mac: ArrayLike<number>): [number, number] {
  return [(mac[0] | (mac[1] << 8) | (mac[2] << 16) | (mac[3] << 24)) >>> 0, mac[4] | (mac[5] << 8)];
}
