/**
 * The statistics registers the Intel 8257x/82576 families share (same offsets in the 82574 and 82576 datasheets):
 * good packets and octets received and transmitted, clear on read; the 64-bit octet counters clear when the high
 * word is read, so the low word is read first.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { addDeviceCounters, deviceStats } from "./intel_stats.ts";
 * using dev = openDevice("0000:00:05.0");
 * const s = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, source: "device" as const };
 * addDeviceCounters(dev.bar(0), s);
 * console.log(deviceStats(dev.bar(0), s, false));
 * ```
 * @module
 */
import type { Region } from "../../mod.ts";
import type { NicStats } from "./nic.ts";

const GPRC = 0x4074; // good packets received
const GPTC = 0x4080; // good packets transmitted
const GORCL = 0x4088; // good octets received, low / high
const GORCH = 0x408c;
const GOTCL = 0x4090; // good octets transmitted, low / high
const GOTCH = 0x4094;
const TWO32 = 2 ** 32;

/** Reads (and so clears) the device's good packet and octet counters and adds them to `s`. */
export function addDeviceCounters(bar0: Region, s: NicStats): void {
  s.rxPackets += bar0.read32(GPRC);
  s.txPackets += bar0.read32(GPTC);
  s.rxBytes += bar0.read32(GORCL) + bar0.read32(GORCH) * TWO32;
  s.txBytes += bar0.read32(GOTCL) + bar0.read32(GOTCH) * TWO32;
}

/**
 * A port's `stats()`: the counters so far, with the device's added first while the port runs (a stopped port's
 * counters were read for the last time when it stopped). Returns a copy.
 */
export function deviceStats(bar0: Region, s: NicStats, stopped: boolean): NicStats {
  if (!stopped) addDeviceCounters(bar0, s);
  return { ...s };
}
