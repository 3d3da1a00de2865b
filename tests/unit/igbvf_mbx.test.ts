// The VF side of the igb PF–VF mailbox (examples/nic/igbvf_mbx.ts) against a register model of V2PMAILBOX as the
// 82576 datasheet (7.8.2.9) describes it: read-to-clear PFSTS/PFACK/RSTD, VFU granted only while PFU is clear, REQ
// and ACK that interrupt the PF. The PF here answers at once, as the kernel's igb does from its interrupt handler.
// Message encoding and the protocol's branches only: the guest test (tests/integration/igbvf.test.ts) is the one
// against the kernel's igb.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  MSGTYPE_ACK,
  MSGTYPE_CTS,
  MSGTYPE_NACK,
  multicastHash,
  PfRefusedError,
  V2PMAILBOX,
  V2PMAILBOX_ACK,
  V2PMAILBOX_PFACK,
  V2PMAILBOX_PFSTS,
  V2PMAILBOX_PFU,
  V2PMAILBOX_REQ,
  V2PMAILBOX_RSTD,
  V2PMAILBOX_VFU,
  VfMailbox,
  VfMessage,
  VMBMEM,
} from "../../examples/nic/igbvf_mbx.ts";
import type { Region } from "../../mod.ts";

type Pf = (msg: Uint32Array) => number[][]; // messages the PF sends back after reading one

/** V2PMAILBOX and VMBMEM of one VF, with a PF that reads each request and answers with `pf(request)`. */
class MailboxModel {
  v2p = V2PMAILBOX_RSTD;
  pfOwns = false;
  mem = new Uint32Array(16);
  requests: Uint32Array[] = [];
  queue: number[][] = []; // PF messages not sent yet: the next goes out when the VF acknowledges one
  seen: number[] = []; // word 0 of every PF message the VF acknowledged
  acks = 0;
  constructor(readonly pf: Pf | null) {}

  read32(off: number): number {
    if (off === V2PMAILBOX) {
      const v = this.v2p;
      this.v2p &= ~(V2PMAILBOX_PFSTS | V2PMAILBOX_PFACK | V2PMAILBOX_RSTD);
      return v;
    }
    return this.mem[(off - VMBMEM) / 4];
  }

  write32(off: number, val: number): void {
    if (off !== V2PMAILBOX) {
      assert.ok(this.v2p & V2PMAILBOX_VFU, "mailbox memory written without VFU");
      this.mem[(off - VMBMEM) / 4] = val;
      return;
    }
    if (val & V2PMAILBOX_VFU) {
      if (!this.pfOwns) this.v2p |= V2PMAILBOX_VFU;
    } else this.v2p &= ~V2PMAILBOX_VFU;
    if (val & V2PMAILBOX_ACK) {
      this.acks++;
      this.seen.push(this.mem[0]);
      const next = this.queue.shift();
      if (next) this.pfSend(next);
    }
    if (val & V2PMAILBOX_REQ && this.pf) {
      const msg = this.mem.slice();
      this.requests.push(msg);
      this.v2p |= V2PMAILBOX_PFACK; // the PF read it
      this.queue = this.pf(msg);
      this.pfSend(this.queue.shift()!);
    }
  }

  pfSend(words: number[]): void {
    this.mem.fill(0);
    words.forEach((w, i) => this.mem[i] = w >>> 0);
    this.v2p |= V2PMAILBOX_PFSTS;
  }

  get region(): Region {
    return this as unknown as Region;
  }
}

const MAC = [0x52, 0x54, 0x00, 0xab, 0x0f, 0x01];
const MAC_WORDS = [0xab005452, 0x010f];
const ack = (m: Uint32Array, ...rest: number[]): number[] => [(m[0] & 0xffff) | MSGTYPE_ACK | MSGTYPE_CTS, ...rest];

describe("VfMailbox", () => {
  it("reset: sends RESET and returns the MAC address of the PF's ACK", () => {
    const m = new MailboxModel(() => [[VfMessage.RESET | MSGTYPE_ACK, ...MAC_WORDS]]);
    const mbx = new VfMailbox(m.region);
    const r = mbx.reset();
    assert.equal(r.mac, "52:54:00:ab:0f:01");
    assert.equal(m.requests[0][0], VfMessage.RESET);
    assert.equal(m.acks, 1, "the answer was acknowledged");
    assert.equal(m.v2p & V2PMAILBOX_VFU, 0, "the buffer was released");
    assert.ok(mbx.clearToSend);
  });

  it("reset: a NACK means no MAC address (null), not an error", () => {
    const m = new MailboxModel(() => [[VfMessage.RESET | MSGTYPE_NACK]]);
    assert.equal(new VfMailbox(m.region).reset().mac, null);
  });

  it("passes over PF control messages and stale answers while it waits for its own", () => {
    const m = new MailboxModel((msg) => [[VfMessage.PF_CONTROL | MSGTYPE_CTS], [MSGTYPE_NACK], ack(msg)]);
    const mbx = new VfMailbox(m.region);
    mbx.setPromiscuous({ multicast: true });
    assert.equal(m.requests[0][0], VfMessage.SET_PROMISC | (2 << 16));
    assert.deepEqual(m.seen.map((w) => (w & 0xffff).toString(16)), ["100", "0", "6"]);
  });

  it("setMac sends the address in words 1-2; a NACK is a PfRefusedError naming the request", () => {
    const m = new MailboxModel((msg) => [[(msg[0] & 0xffff) | MSGTYPE_NACK | MSGTYPE_CTS]]);
    const mbx = new VfMailbox(m.region);
    assert.throws(() => mbx.setMac(MAC), (e) => {
      assert.ok(e instanceof PfRefusedError);
      assert.equal(e.request, "SET_MAC_ADDR");
      assert.match(e.message, /administrator/);
      return true;
    });
    assert.deepEqual([...m.requests[0].subarray(0, 3)], [VfMessage.SET_MAC_ADDR, ...MAC_WORDS]);
  });

  it("setMulticast: count in bits 23:16, 12-bit hashes as 16-bit halves; more than 30 refused before sending", () => {
    const m = new MailboxModel((msg) => [ack(msg)]);
    const mbx = new VfMailbox(m.region);
    const macs = [[0x01, 0, 0x5e, 0, 0x12, 0x34], [0x33, 0x33, 0, 0, 0xab, 0xcd], [0x01, 0, 0x5e, 0, 0, 0xfb]];
    mbx.setMulticast(macs);
    const req = m.requests[0];
    assert.equal(req[0], VfMessage.SET_MULTICAST | (3 << 16));
    assert.deepEqual([req[1] & 0xffff, req[1] >>> 16, req[2] & 0xffff], macs.map(multicastHash));
    assert.equal(multicastHash(macs[0]), 0x341);
    assert.throws(() => mbx.setMulticast(new Array(31).fill(macs[0])), /at most 30/);
    assert.equal(m.requests.length, 1);
  });

  it("a silent PF times out with the remedy (its interface must be up)", () => {
    const m = new MailboxModel(null);
    const mbx = new VfMailbox(m.region, { timeoutMs: 20 });
    assert.throws(() => mbx.reset(), /no acknowledgement of RESET from the PF within 20 ms.*interface is up/);
  });

  it("waits while the PF holds the buffer (PFU), and says so when it never lets go", () => {
    const m = new MailboxModel((msg) => [ack(msg)]);
    m.pfOwns = true;
    m.v2p |= V2PMAILBOX_PFU;
    assert.throws(() => new VfMailbox(m.region, { timeoutMs: 20 }).setPromiscuous({}), /PFU stays set/);
    assert.throws(() => new VfMailbox(m.region).send([]), /1 to 16 words/);
  });
});
