/**
 * A packet generator in the manner of ixy-pktgen: sends sequence-numbered UDP frames in batches from one port and
 * prints packets per second. With `--verify <port>` it also receives on a second port (in the same process) and
 * checks that every frame arrives once, in order and intact; frames in flight are then capped (`--window`) so a
 * slow path drops none. With `--queues N` the frames form 16 UDP flows sent from N transmit queues and received
 * on N receive queues (RSS keeps each flow on one queue, so order is checked per flow); `--interrupts` sleeps on
 * the receive queues' interrupts when idle; `--rate` paces the sender.
 *
 *   deno run -A examples/pktgen.ts <tx-port> [--verify <rx-port>] [options]      (see --help)
 *   bun examples/pktgen.ts <tx-port> [--verify <rx-port>] [options]
 *   deno task vm --mode iommu examples/pktgen.ts 0000:00:05.0 --verify 0000:00:06.0    (emulated guest)
 *
 * Ports: QEMU's e1000e (Intel 82574L), igb (Intel 82576) and legacy virtio-net; drivers in examples/nic/. Exits non-zero when a check
 * fails: a frame lost, duplicated, out of order or damaged, or the device's counters disagreeing with the count.
 * @module
 */
import { reserveHugepages, VfioError } from "../mod.ts";
import { intOption, NIC_PROGRAM_OPTIONS, programArgs, runChecks } from "./harness.ts";
import { DEFAULT_SRC_PORT, FrameWriter, HEADERS, SequenceChecker } from "./nic/frame.ts";
import { IdleLoop } from "./nic/idle.ts";
import { type Packet, parseMac } from "./nic/nic.ts";
import { drainTx, openNic, portSummary, waitForLink } from "./nic/open.ts";

const USAGE = `usage: pktgen.ts <tx-port> [--verify <rx-port>] [options]
  tx-port            PCI address of the sending NIC (e1000e, igb or legacy virtio-net bound to vfio-pci)
  --verify <port>    also receive on <port> and check every frame: once, in order (per flow), intact
  --size N           frame size in bytes without FCS, 60..1514 (default 60)
  --batch N          frames per txBatch/rxBatch call (default 32)
  --count N          frames to send (default 10000; 0 = until interrupted, not with --verify)
  --window N         with --verify: most frames in flight (default 128)
  --rate N           send at most N frames per second (default 0: as fast as the ring takes them)
  --queues N         queue pairs per port where the device has several (igb): 16 UDP flows (source ports
                     42424..42439), flow f sent on transmit queue f mod N, received on whichever queue RSS picks
  --interrupts       when idle, sleep on the receive queues' interrupts (MSI-X/MSI) instead of polling
  --dst-mac MAC      destination MAC (default: the --verify port's, else broadcast)
  --timeout S        with --verify: give up after S seconds without progress (default 5)
  --hugepages N      first make sure N free 2 MiB hugepages exist (root; virtio-net's queues need one per port)
  --busy             poll without ever sleeping (default: nap 1 ms after 0.2 ms without work)
  --noiommu          open the devices in no-IOMMU mode
  --json             print the checks as one JSON object (the rest goes to stderr)`;

const { values, positionals, checks } = programArgs(USAGE, {
  verify: { type: "string" },
  size: { type: "string", default: "60" },
  batch: { type: "string", default: "32" },
  count: { type: "string", default: "10000" },
  window: { type: "string", default: "128" },
  rate: { type: "string", default: "0" },
  "dst-mac": { type: "string" },
  timeout: { type: "string", default: "5" },
  ...NIC_PROGRAM_OPTIONS,
});
const int = intOption;
const check = (ok: boolean, what: string): void => checks.check(ok, what);

const rate = (n: number, ms: number): string => `${Math.round(n / (ms / 1000))} pps`;
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

/** The flows of a run: one writer and one checker per UDP source port; flow f goes out on transmit queue f mod q. */
class Flows {
  readonly writers: FrameWriter[];
  readonly checkers: SequenceChecker[];
  /** Frames sent per flow (the next sequence number of each). */
  readonly sent: number[];
  foreign = 0;
  constructor(readonly count: number, size: number, src: Uint8Array, dst: Uint8Array) {
    const ports = Array.from({ length: count }, (_, f) => DEFAULT_SRC_PORT + f);
    this.writers = ports.map((srcPort) => new FrameWriter({ size, src, dst, srcPort }));
    this.checkers = ports.map((srcPort) => new SequenceChecker(size, srcPort));
    this.sent = new Array(count).fill(0);
  }
  get total(): number {
    return sum(this.sent);
  }
  get seen(): number {
    return sum(this.checkers.map((c) => c.seen));
  }
  /** Checks one received frame against its flow's checker (by UDP source port); other frames are foreign. */
  check(f: Uint8Array, length: number): void {
    const flow = ((f[34] << 8) | f[35]) - DEFAULT_SRC_PORT;
    if (length >= HEADERS && f[12] === 0x08 && flow >= 0 && flow < this.count) this.checkers[flow].check(f, length);
    else this.foreign++;
  }
  sumOf(key: "good" | "lost" | "late" | "corrupt" | "foreign"): number {
    return sum(this.checkers.map((c) => c[key])) + (key === "foreign" ? this.foreign : 0);
  }
}

async function main(): Promise<void> {
  if (positionals.length !== 1) throw new VfioError("pktgen needs one tx port", { remedy: USAGE });
  const size = int("size", values.size!, 60, 1514);
  const batch = int("batch", values.batch!, 1, 256);
  const count = int("count", values.count!, 0, 2 ** 32 - 1);
  const window = int("window", values.window!, 1, 1 << 20);
  const pps = int("rate", values.rate!, 0, 1e9);
  const queues = int("queues", values.queues!, 1, 16);
  const timeoutMs = int("timeout", values.timeout!, 1, 3600) * 1000;
  if (values.verify && count === 0) throw new VfioError("--verify needs a --count", { remedy: "give --count N" });

  if (values.hugepages) reserveHugepages(int("hugepages", values.hugepages, 1, 65536));
  const opts = { noiommu: values.noiommu, queues };
  using tx = openNic(positionals[0], opts);
  using rx = values.verify ? openNic(values.verify, opts) : null;
  const ports = rx ? [tx, rx] : [tx];
  const rxQueues = rx ? Array.from({ length: rx.queues }, (_, queue) => ({ nic: rx, queue })) : [];
  const idle = new IdleLoop(rxQueues, { interrupts: values.interrupts, busy: values.busy });
  // Disposed first (declared last): every port stops before any closes, as buffers may sit in another port's ring.
  using _stop = { [Symbol.dispose]: (): void => ports.forEach((nic) => nic.stop()) };
  for (const nic of ports) {
    console.log(portSummary(nic, await waitForLink(nic)));
  }
  const dst = values["dst-mac"] ? parseMac(values["dst-mac"]) : rx ? parseMac(rx.mac) : new Uint8Array(6).fill(0xff);
  const flows = new Flows(queues > 1 ? 16 : 1, size, parseMac(tx.mac), dst);
  console.log(
    `sending ${count || "unlimited"} frames of ${size} bytes in batches of ${batch} from ${tx.address}` +
      (flows.count > 1 ? ` in ${flows.count} flows over ${tx.queues} transmit queue(s)` : "") +
      (pps ? ` at ${pps} frames/s` : "") + (values.interrupts ? ", interrupt-driven receive" : ""),
  );

  const bufs: Packet[] = new Array(batch);
  const bufFlow: number[] = new Array(batch);
  const rxBufs: Packet[] = new Array(batch);
  const txPerQueue: number[] = new Array(tx.queues).fill(0);
  const rxPerQueue: number[] = new Array(rx?.queues ?? 0).fill(0);
  const cursor = Array.from({ length: tx.queues }, (_, q) => q % flows.count); // next flow of each transmit queue
  const t0 = performance.now();
  let seq = 0, firstQueue = 0, lastPrint = t0, lastSeq = 0, lastProgress = t0, lastSeen = 0, spins = 0;
  for (;;) {
    // Transmit: at most `window` frames ahead of the receiver when verifying, and no faster than --rate.
    let work = 0, nextSendMs = 100;
    let room = count ? count - seq : batch * tx.queues;
    if (rx) room = Math.min(room, window - (seq - flows.seen));
    if (pps) {
      const due = Math.floor((performance.now() - t0) * pps / 1000) + 1 - seq;
      if (due <= 0) nextSendMs = (seq * 1000) / pps - (performance.now() - t0);
      room = Math.min(room, due);
    }
    const share = Math.ceil(room / tx.queues); // each transmit queue gets its part of the room
    for (let j = 0; j < tx.queues && room > 0; j++) {
      const q = (firstQueue + j) % tx.queues; // a different queue first each round, so a room of one rotates
      const k = tx.pool.allocBatch(bufs, Math.min(batch, room, share));
      let f = cursor[q];
      for (let i = 0; i < k; i++) {
        flows.writers[f].write(bufs[i].data, flows.sent[f]++);
        bufs[i].length = size;
        bufFlow[i] = f;
        f = (f + tx.queues) % flows.count;
        if (f % tx.queues !== q % tx.queues) f = q % flows.count; // fewer flows than queues
      }
      const sent = tx.txBatch(bufs, k, q);
      for (let i = k - 1; i >= sent; i--) {
        bufs[i].free();
        flows.sent[bufFlow[i]]--;
      }
      cursor[q] = sent < k ? bufFlow[sent] : f;
      txPerQueue[q] += sent;
      room -= sent;
      seq += sent;
      work += sent;
    }
    firstQueue = (firstQueue + 1) % tx.queues;
    // Receive and check, every queue.
    if (rx) {
      for (let q = 0; q < rx.queues; q++) {
        const n = rx.rxBatch(rxBufs, batch, q);
        rxPerQueue[q] += n;
        work += n;
        for (let i = 0; i < n; i++) {
          flows.check(rxBufs[i].data, rxBufs[i].length);
          rxBufs[i].free();
        }
      }
    }
    if (idle.idle(work > 0)) await idle.sleep(Math.max(1, Math.ceil(nextSendMs)));
    else if ((++spins & 63) !== 0) continue;
    const now = performance.now();
    if (now - lastPrint >= 1000) {
      console.log(`  ${rate(seq - lastSeq, now - lastPrint)} sent${rx ? `, ${flows.sumOf("good")} received` : ""}`);
      lastPrint = now;
      lastSeq = seq;
    }
    if (!rx) {
      if (count && seq >= count) break;
      continue;
    }
    const seen = flows.seen;
    if (seen >= count) break;
    if (seen !== lastSeen) {
      lastSeen = seen;
      lastProgress = now;
    } else if (now - lastProgress > timeoutMs) {
      console.log(`no frame for ${timeoutMs / 1000} s: giving up`);
      break;
    }
  }
  await idle.settle();
  // what never arrived is lost, not just the gaps before a later frame
  flows.checkers.forEach((c, f) => c.finish(flows.sent[f]));
  const pending = drainTx(tx);
  const ms = performance.now() - t0;
  console.log(`sent ${seq} frames in ${(ms / 1000).toFixed(2)} s: ${rate(seq, ms)}`);
  check(pending === 0, `transmit ring drained (${pending} pending)`);
  if (tx.queues > 1) console.log(`  per transmit queue: ${txPerQueue.join(" ")}`);
  if (values.interrupts) console.log(`  ${idle.stats.sleeps} sleeps, ${idle.stats.wakeups} ended by an interrupt`);

  const txStats = tx.stats();
  console.log(`${tx.driver} ${tx.address} stats (${txStats.source}): ${JSON.stringify(txStats)}`);
  check(txStats.txPackets === seq, `${tx.driver} counted ${txStats.txPackets} frames sent, pktgen sent ${seq}`);
  if (rx) {
    const rxStats = rx.stats();
    const good = flows.sumOf("good"), lost = flows.sumOf("lost"), late = flows.sumOf("late");
    const corrupt = flows.sumOf("corrupt"), foreign = flows.sumOf("foreign");
    console.log(`${rx.driver} ${rx.address} stats (${rxStats.source}): ${JSON.stringify(rxStats)}`);
    check(
      rxStats.rxPackets === good + late + corrupt + foreign,
      `${rx.driver} counted ${rxStats.rxPackets} frames received`,
    );
    if (foreign) console.log(`  (${foreign} frames that are not ours were ignored)`);
    if (rx.queues > 1) {
      check(
        rxPerQueue.every((n) => n > 0),
        `frames spread over ${rx.queues} receive queues: ${rxPerQueue.join(" ")}`,
      );
    }
    const firstError = flows.checkers.find((c) => c.firstError)?.firstError;
    check(
      good === count && flows.seen === count,
      `${good}/${count} frames arrived once, in order, intact (${lost} lost, ${late} ` +
        `duplicate or out of order, ${corrupt} damaged${firstError ? `; first: ${firstError}` : ""})`,
    );
    console.log(`verified ${good} frames at ${rate(good, ms)}`);
  }
}

await runChecks("pktgen", checks, main);
