/**
 * ixy-fwd: forwards frames between two ports in both directions, in batches, without copying (a frame received on
 * one port is sent from its buffer on the other; the buffer goes back to its pool once sent), and prints packets
 * per second each way.
 *
 *   deno run -A examples/fwd.ts <port-a> <port-b> [options]      (see --help)
 *   bun examples/fwd.ts <port-a> <port-b> [options]
 *   deno task vm --mode iommu --devices virtio-net@0,e1000e@0,virtio-net@1,e1000e@1 --cmd \
 *     "deno run -A examples/fwd.ts 0000:00:04.0 0000:00:05.0 --count 1000 & sleep 8; \
 *      deno run -A examples/pktgen.ts 0000:00:03.0 --verify 0000:00:06.0 --count 1000; wait"
 *
 * Ports: QEMU's e1000e (Intel 82574L) and legacy virtio-net; drivers in examples/nic/. Exits non-zero when
 * `--count` frames were not forwarded within `--timeout` seconds, or when frames had to be dropped.
 * @module
 */
import { reserveHugepages, VfioError } from "../mod.ts";
import { intOption, programArgs, runChecks } from "./harness.ts";
import { Backoff, type Nic, type Packet } from "./nic/nic.ts";
import { drainTx, openNic, portSummary, waitForLink } from "./nic/open.ts";

const USAGE = `usage: fwd.ts <port-a> <port-b> [options]
  port-a, port-b     PCI addresses of two NICs (e1000e or legacy virtio-net bound to vfio-pci)
  --batch N          frames per rxBatch/txBatch call (default 32)
  --count N          stop after forwarding N frames in all (default 0: run until interrupted)
  --timeout S        with --count: fail if they have not all come within S seconds (default 60)
  --hugepages N      first make sure N free 2 MiB hugepages exist (root; virtio-net's queues need one per port)
  --busy             poll without ever sleeping (default: nap 1 ms after 0.2 ms without work)
  --noiommu          open the devices in no-IOMMU mode
  --json             print the checks as one JSON object (the rest goes to stderr)`;

const { values, positionals, checks } = programArgs(USAGE, {
  batch: { type: "string", default: "32" },
  count: { type: "string", default: "0" },
  timeout: { type: "string", default: "60" },
  hugepages: { type: "string" },
  busy: { type: "boolean" },
  noiommu: { type: "boolean" },
});
const int = intOption;
const check = (ok: boolean, what: string): void => checks.check(ok, what);

/** One direction: counts what it forwarded and what it had to drop (transmit ring full). */
class Path {
  forwarded = 0;
  dropped = 0;
  readonly #bufs: Packet[];
  constructor(readonly from: Nic, readonly to: Nic, readonly batch: number) {
    this.#bufs = new Array(batch);
  }

  /** One batch: receive on `from`, send on `to`, free what did not fit. */
  step(): number {
    const bufs = this.#bufs;
    const n = this.from.rxBatch(bufs, this.batch);
    if (n === 0) return 0;
    const sent = this.to.txBatch(bufs, n);
    for (let i = sent; i < n; i++) bufs[i].free();
    this.forwarded += sent;
    this.dropped += n - sent;
    return n;
  }
}

const rate = (n: number, ms: number): number => Math.round(n / (ms / 1000));

async function main(): Promise<void> {
  if (positionals.length !== 2) throw new VfioError("fwd needs two ports", { remedy: USAGE });
  if (positionals[0] === positionals[1]) throw new VfioError("fwd needs two different ports", { remedy: USAGE });
  const batch = int("batch", values.batch!, 1, 256);
  const count = int("count", values.count!, 0, 2 ** 32 - 1);
  const timeoutMs = int("timeout", values.timeout!, 1, 86400) * 1000;

  if (values.hugepages) reserveHugepages(int("hugepages", values.hugepages, 1, 65536));
  const opts = { noiommu: values.noiommu };
  using a = openNic(positionals[0], opts);
  using b = openNic(positionals[1], opts);
  // Disposed first (declared last): both ports stop before either closes, since each sends the other's buffers.
  using _stop = { [Symbol.dispose]: (): void => [a, b].forEach((nic) => nic.stop()) };
  for (const nic of [a, b]) {
    console.log(portSummary(nic, await waitForLink(nic)));
  }
  const ab = new Path(a, b, batch), ba = new Path(b, a, batch);
  console.log(`forwarding ${a.address} <-> ${b.address} in batches of ${batch}${count ? `, ${count} frames` : ""}`);

  const backoff = new Backoff({ busy: values.busy });
  const t0 = performance.now();
  let first = 0, last = 0, peak = 0, lastPrint = t0, lastAb = 0, lastBa = 0, spins = 0;
  for (;;) {
    const n = ab.step() + ba.step();
    if (n > 0) {
      last = performance.now();
      if (first === 0) first = last;
    }
    if (backoff.idle(n > 0)) await backoff.pause();
    else if ((++spins & 63) !== 0) continue;
    const now = performance.now();
    if (now - lastPrint >= 1000) {
      const ms = now - lastPrint, pAb = rate(ab.forwarded - lastAb, ms), pBa = rate(ba.forwarded - lastBa, ms);
      if (pAb + pBa > 0) console.log(`  a->b ${pAb} pps, b->a ${pBa} pps`);
      peak = Math.max(peak, pAb + pBa);
      lastPrint = now;
      lastAb = ab.forwarded;
      lastBa = ba.forwarded;
    }
    if (count && ab.forwarded + ba.forwarded + ab.dropped + ba.dropped >= count) break;
    if (count && now - t0 > timeoutMs) {
      console.log(`timed out after ${timeoutMs / 1000} s`);
      break;
    }
  }
  const pending = drainTx(a) + drainTx(b);
  const total = ab.forwarded + ba.forwarded;
  const ms = last - first;
  console.log(
    `forwarded ${ab.forwarded} a->b and ${ba.forwarded} b->a frames` +
      (ms > 0 ? `: ${rate(total, ms)} pps from the first frame to the last, best second ${peak} pps` : ""),
  );
  for (const nic of [a, b]) {
    const s = nic.stats();
    console.log(`${nic.driver} ${nic.address} stats (${s.source}): ${JSON.stringify(s)}`);
  }
  if (count) check(total >= count, `forwarded ${total} of ${count} frames`);
  check(ab.dropped + ba.dropped === 0, `dropped ${ab.dropped + ba.dropped} frames (transmit ring full)`);
  check(pending === 0, `transmit rings drained (${pending} pending)`);
}

await runChecks("fwd", checks, main);
