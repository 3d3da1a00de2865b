/**
 * Interrupt-driven receive versus polling on modern virtio-net, run in the guest: the guest kernel sends 60-byte
 * frames at a low paced rate (default 100/s) from a kernel-driven NIC on the same QEMU hub (a python3 AF_PACKET
 * sender, its send time in each frame), and the vfio-ts port receives them three ways:
 *
 * - `busy`: rxBatch in a loop that never yields (ixy's busy polling);
 * - `nap`:  the examples' default Backoff: after 0.2 ms without work, sleep 1 ms;
 * - `irq`:  poll; after an empty batch, `waitRx` (the receive queue's MSI-X vector), then poll again.
 *
 * Per mode: CPU time of the whole process (user + system, `process.cpuUsage`) per received frame, and the wake-up
 * latency from the kernel's send to the frame in the receive loop (median and p99; both clocks are the guest's
 * CLOCK_REALTIME). Prints a table and `RESULT {json}`.
 *
 *   deno task vm --mode iommu --devices virtio-net-modern@0,e1000e@0:kernel bench/virtio_modern_irq.ts 0000:00:03.0 0000:00:04.0
 *
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { Backoff, type Packet } from "../examples/nic/nic.ts";
import { openNic, waitForLink } from "../examples/nic/open.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rate: { type: "string", default: "100" },
    seconds: { type: "string", default: "5" },
    modes: { type: "string", default: "irq,nap,busy" },
    noiommu: { type: "boolean" },
  },
});
if (positionals.length !== 2) {
  console.error(
    "usage: virtio_modern_irq.ts <vfio-port> <kernel-port> [--rate N] [--seconds S] [--modes irq,nap,busy]",
  );
  process.exit(2);
}
const [port, peer] = positionals;
const rate = Number(values.rate), seconds = Number(values.seconds);
const ETHERTYPE = 0x88b5;

// The sender: one frame every 1/rate s on an absolute schedule; payload = magic, sequence, CLOCK_REALTIME in ns.
const SENDER = `
import socket, struct, sys, time
iface, dst, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
head = bytes.fromhex(dst.replace(":", "")) + s.getsockname()[4][:6] + struct.pack("!H", ${ETHERTYPE})
n = int(rate * seconds)
t0 = time.monotonic()
for i in range(n):
    d = t0 + i / rate - time.monotonic()
    if d > 0:
        time.sleep(d)
    s.send(head + struct.pack("<IIQ", 0x76697274, i, time.time_ns()) + bytes(30))
print(n)
`;

function kernelIface(address: string): string {
  const iface = readdirSync(`/sys/bus/pci/devices/${address}/net`)[0];
  spawnSync("ip", ["link", "set", "dev", iface, "up"]);
  return iface;
}

const nowNs = (): number => (performance.timeOrigin + performance.now()) * 1e6;

interface Result {
  mode: string;
  runtime: string;
  frames: number;
  sent: number;
  cpu_us_per_frame: number;
  cpu_percent: number;
  wake_median_us: number;
  wake_p99_us: number;
  wakeups: number;
}

async function run(mode: string, nic: ReturnType<typeof openNic>, iface: string): Promise<Result> {
  const bufs: Packet[] = new Array(32);
  const lat: number[] = [];
  const backoff = new Backoff({ busy: false });
  let sent = -1, wakeups = 0;
  const child = spawn("python3", ["-c", SENDER, iface, nic.mac, String(rate), String(seconds)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout!.on("data", (d: Uint8Array) => out += new TextDecoder().decode(d));
  const exited = new Promise<void>((r) => child.on("close", () => r()));
  let done = false;
  exited.then(() => {
    done = true;
    sent = Number(out.trim());
  });
  const cpu0 = process.cpuUsage(), t0 = performance.now();
  let lastCheck = t0;
  for (;;) {
    const n = nic.rxBatch(bufs, 32);
    for (let i = 0; i < n; i++) {
      const p = bufs[i], dv = new DataView(p.data.buffer, p.data.byteOffset, p.length);
      if (p.length >= 30 && dv.getUint16(12) === ETHERTYPE && dv.getUint32(14, true) === 0x76697274) {
        lat.push((nowNs() - Number(dv.getBigUint64(22, true))) / 1000);
      }
      p.free();
    }
    if (mode === "busy") {
      // never yields, except every 50 ms to let the child's exit event through
      const now = performance.now();
      if (now - lastCheck > 50) {
        lastCheck = now;
        await new Promise((r) => setTimeout(r, 0));
        if (done) break;
      }
      continue;
    }
    if (n > 0) continue;
    if (done) break;
    if (mode === "irq") {
      if (await nic.waitRx!(0, 100)) wakeups++;
    } else if (backoff.idle(false)) await backoff.pause();
  }
  await exited;
  const cpu = process.cpuUsage(cpu0), wall = performance.now() - t0;
  const cpuUs = cpu.user + cpu.system;
  lat.sort((a, b) => a - b);
  const pick = (q: number): number => Math.round(lat[Math.min(lat.length - 1, Math.floor(lat.length * q))] ?? NaN);
  return {
    mode,
    runtime: "Bun" in globalThis ? "bun" : "deno",
    frames: lat.length,
    sent,
    cpu_us_per_frame: Math.round(cpuUs / Math.max(1, lat.length)),
    cpu_percent: Math.round((cpuUs / 1000 / wall) * 1000) / 10,
    wake_median_us: pick(0.5),
    wake_p99_us: pick(0.99),
    wakeups: mode === "irq" ? wakeups : mode === "nap" ? backoff.naps : 0,
  };
}

const iface = kernelIface(peer);
using nic = openNic(port, { noiommu: values.noiommu });
await waitForLink(nic);
const t = Date.now();
while (readFileSync(`/sys/class/net/${iface}/operstate`, "utf8").trim() !== "up" && Date.now() - t < 15_000) {
  await new Promise((r) => setTimeout(r, 50));
}
const results: Result[] = [];
for (const mode of values.modes!.split(",")) {
  const r = await run(mode, nic, iface);
  results.push(r);
  console.log(
    `${r.runtime} ${
      mode.padEnd(4)
    } ${r.frames}/${r.sent} frames at ${rate}/s: ${r.cpu_us_per_frame} µs CPU per frame ` +
      `(${r.cpu_percent}% of a CPU), wake-up median ${r.wake_median_us} µs, p99 ${r.wake_p99_us} µs` +
      (mode === "busy" ? "" : `, ${r.wakeups} ${mode === "irq" ? "interrupt wake-ups" : "naps"}`),
  );
}
nic.stop();
console.log(`RESULT ${JSON.stringify(results)}`);
