/**
 * A packet generator in the manner of ixy-pktgen: sends sequence-numbered UDP frames in batches from one port and
 * prints packets per second. With `--verify <port>` it also receives on a second port (in the same process) and
 * checks that every frame arrives once, in order and intact; frames in flight are then capped (`--window`) so a
 * slow path drops none.
 *
 *   deno run -A examples/pktgen.ts <tx-port> [--verify <rx-port>] [options]      (see --help)
 *   bun examples/pktgen.ts <tx-port> [--verify <rx-port>] [options]
 *   deno task vm --mode iommu examples/pktgen.ts 0000:00:05.0 --verify 0000:00:06.0    (emulated guest)
 *
 * Ports: QEMU's e1000e (Intel 82574L) and legacy virtio-net; drivers in examples/nic/. Exits non-zero when a check
 * fails: a frame lost, duplicated, out of order or damaged, or the device's counters disagreeing with the count.
 * @module
 */
import { reserveHugepages, VfioError } from "../mod.ts";
import { intOption, programArgs, runChecks } from "./harness.ts";
import { FrameWriter, SequenceChecker } from "./nic/frame.ts";
import { Backoff, type Packet, parseMac } from "./nic/nic.ts";
import { drainTx, openNic, portSummary, waitForLink } from "./nic/open.ts";

const USAGE = `usage: pktgen.ts <tx-port> [--verify <rx-port>] [options]
  tx-port            PCI address of the sending NIC (e1000e or legacy virtio-net bound to vfio-pci)
  --verify <port>    also receive on <port> and check every frame: once, in order, intact
  --size N           frame size in bytes without FCS, 60..1514 (default 60)
  --batch N          frames per txBatch/rxBatch call (default 32)
  --count N          frames to send (default 10000; 0 = until interrupted, not with --verify)
  --window N         with --verify: most frames in flight (default 128)
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
  "dst-mac": { type: "string" },
  timeout: { type: "string", default: "5" },
  hugepages: { type: "string" },
  busy: { type: "boolean" },
  noiommu: { type: "boolean" },
});
const int = intOption;
const check = (ok: boolean, what: string): void => checks.check(ok, what);

const rate = (n: number, ms: number): string => `${Math.round(n / (ms / 1000))} pps`;

async function main(): Promise<void> {
  if (positionals.length !== 1) throw new VfioError("pktgen needs one tx port", { remedy: USAGE });
  const size = int("size", values.size!, 60, 1514);
  const batch = int("batch", values.batch!, 1, 256);
  const count = int("count", values.count!, 0, 2 ** 32 - 1);
  const window = int("window", values.window!, 1, 1 << 20);
  const timeoutMs = int("timeout", values.timeout!, 1, 3600) * 1000;
  if (values.verify && count === 0) throw new VfioError("--verify needs a --count", { remedy: "give --count N" });

  if (values.hugepages) reserveHugepages(int("hugepages", values.hugepages, 1, 65536));
  const opts = { noiommu: values.noiommu };
  using tx = openNic(positionals[0], opts);
  using rx = values.verify ? openNic(values.verify, opts) : null;
  const ports = rx ? [tx, rx] : [tx];
  // Disposed first (declared last): every port stops before any closes, as buffers may sit in another port's ring.
  using _stop = { [Symbol.dispose]: (): void => ports.forEach((nic) => nic.stop()) };
  for (const nic of ports) {
    console.log(portSummary(nic, await waitForLink(nic)));
  }
  const dst = values["dst-mac"] ? parseMac(values["dst-mac"]) : rx ? parseMac(rx.mac) : new Uint8Array(6).fill(0xff);
  const writer = new FrameWriter({ size, src: parseMac(tx.mac), dst });
  const checker = new SequenceChecker(size);
  console.log(`sending ${count || "unlimited"} frames of ${size} bytes in batches of ${batch} from ${tx.address}`);

  const bufs: Packet[] = new Array(batch);
  const rxBufs: Packet[] = new Array(batch);
  const backoff = new Backoff({ busy: values.busy });
  let seq = 0;
  const t0 = performance.now();
  let lastPrint = t0, lastSeq = 0, lastProgress = t0, lastSeen = 0, spins = 0;
  for (;;) {
    // Transmit: at most `window` frames ahead of the receiver when verifying.
    let work = 0;
    let room = count ? count - seq : batch;
    if (rx) room = Math.min(room, window - (seq - checker.seen));
    if (room > 0) {
      const k = tx.pool.allocBatch(bufs, Math.min(batch, room));
      for (let i = 0; i < k; i++) {
        writer.write(bufs[i].data, seq + i);
        bufs[i].length = size;
      }
      const sent = tx.txBatch(bufs, k);
      for (let i = sent; i < k; i++) bufs[i].free();
      seq += sent;
      work += sent;
    }
    // Receive and check.
    if (rx) {
      const n = rx.rxBatch(rxBufs, batch);
      work += n;
      for (let i = 0; i < n; i++) {
        checker.check(rxBufs[i].data, rxBufs[i].length);
        rxBufs[i].free();
      }
    }
    if (backoff.idle(work > 0)) await backoff.pause();
    else if ((++spins & 63) !== 0) continue;
    const now = performance.now();
    if (now - lastPrint >= 1000) {
      console.log(`  ${rate(seq - lastSeq, now - lastPrint)} sent${rx ? `, ${checker.good} received` : ""}`);
      lastPrint = now;
      lastSeq = seq;
    }
    if (!rx) {
      if (count && seq >= count) break;
      continue;
    }
    if (checker.seen >= count) break;
    if (checker.seen !== lastSeen) {
      lastSeen = checker.seen;
      lastProgress = now;
    } else if (now - lastProgress > timeoutMs) {
      console.log(`no frame for ${timeoutMs / 1000} s: giving up`);
      break;
    }
  }
  checker.finish(seq); // what never arrived is lost, not just the gaps before a later frame
  const pending = drainTx(tx);
  const ms = performance.now() - t0;
  console.log(`sent ${seq} frames in ${(ms / 1000).toFixed(2)} s: ${rate(seq, ms)}`);
  check(pending === 0, `transmit ring drained (${pending} pending)`);

  const txStats = tx.stats();
  console.log(`${tx.driver} ${tx.address} stats (${txStats.source}): ${JSON.stringify(txStats)}`);
  check(txStats.txPackets === seq, `${tx.driver} counted ${txStats.txPackets} frames sent, pktgen sent ${seq}`);
  if (rx) {
    const rxStats = rx.stats();
    console.log(`${rx.driver} ${rx.address} stats (${rxStats.source}): ${JSON.stringify(rxStats)}`);
    check(
      rxStats.rxPackets === checker.good + checker.late + checker.corrupt + checker.foreign,
      `${rx.driver} counted ${rxStats.rxPackets} frames received`,
    );
    if (checker.foreign) console.log(`  (${checker.foreign} frames that are not ours were ignored)`);
    const all = checker.good === count && checker.seen === count;
    check(
      all,
      `${checker.good}/${count} frames arrived once, in order, intact (${checker.lost} lost, ${checker.late} ` +
        `duplicate or out of order, ${checker.corrupt} damaged${
          checker.firstError ? `; first: ${checker.firstError}` : ""
        })`,
    );
    console.log(`verified ${checker.good} frames at ${rate(checker.good, ms)}`);
  }
}

await runChecks("pktgen", checks, main);
