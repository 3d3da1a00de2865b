// Interrupted, concurrent and abused binds against the real kernel in the guest, on the e1000e the rig leaves on
// its kernel driver: a SIGTERM/SIGINT between any two steps of `vfio bind` lets the bind finish before the process
// exits (128 + signal); a SIGKILL between steps leaves a record and/or a pending driver_override that `vfio status`
// shows and `vfio restore` clears, putting the device back on e1000e; two binds of one device are serialised (the
// second waits, then finds it bound; one that waits too long names the holder's pid); a device whose
// driver_override was e1000e gets e1000e back (not an empty override); planted records and hostile driver names
// exit 2 and change nothing. The CLI runs as child processes of the runtime under test, paused between steps by
// the test-only VFIO_TS_BIND_PAUSE_AFTER hook. Skips outside the guest.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { guest } from "./guest.ts";

const env = process.env;
const sysfs = (attr: string): string => `/sys/bus/pci/devices/${NIC}/${attr}`;
function driverOf(addr: string): string | null {
  try {
    return basename(readlinkSync(`/sys/bus/pci/devices/${addr}/driver`));
  } catch {
    return null;
  }
}
const NIC = guest.inVm ? guest.kernelDevices.find((a) => driverOf(a) === "e1000e") ?? "" : "";
const RECORD = `/run/vfio-ts/${NIC}.json`;
const ENTRY = join(import.meta.dirname ?? ".", "../../cli/vfio.ts");
/** Per test: a Deno start in the TCG guest takes seconds, and each test starts a dozen processes. */
const LONG = 900_000;
const STEPS = ["record", "driver_override", "unbind", "drivers_probe"] as const;

interface Exit {
  /** The exit status as a shell sees it (128 + n when a signal killed it). */
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * A `vfio` child process of the runtime under test, with its output collected. It runs under `sh`, which reports
 * its exit status on stderr: Deno's child_process reports a signal it sent as the cause of exit even when the
 * child caught it and exited by itself.
 */
class Vfio {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  /** The vfio process's pid, known once it paused. */
  pid = 0;
  readonly exited: Promise<Exit>;

  constructor(args: readonly string[], extraEnv: Record<string, string> = {}) {
    const command = guest.runtime === "bun"
      ? [guest.bins.bun, ENTRY, ...args]
      : [guest.bins.deno, "run", "-A", "--no-check", ENTRY, ...args];
    const sh = `"$@"; echo "@@exit=$?@@" >&2`;
    this.child = spawn("sh", ["-c", sh, "sh", ...command], {
      env: { ...env, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout?.on("data", (d) => this.stdout += String(d));
    this.child.stderr?.on("data", (d) => this.stderr += String(d));
    this.exited = new Promise((resolve) => {
      this.child.on("close", () => {
        const m = /@@exit=(\d+)@@\n?/.exec(this.stderr);
        const stderr = this.stderr.replace(/@@exit=\d+@@\n?/, "");
        resolve({ status: m ? Number(m[1]) : -1, stdout: this.stdout, stderr });
      });
    });
  }

  /** Resolves once the process stopped after `step` (the test hook's marker); fails if it exits first. */
  async pausedAfter(step: string): Promise<void> {
    const marker = new RegExp(`@@vfio-ts:paused:${step}:(\\d+)@@`);
    const deadline = Date.now() + 180_000;
    let done = false;
    this.exited.then(() => done = true);
    for (let m = marker.exec(this.stderr); m === null; m = marker.exec(this.stderr)) {
      assert.ok(!done, `vfio exited before pausing after ${step}: ${this.stderr}`);
      assert.ok(Date.now() < deadline, `no pause after ${step}: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    this.pid = Number(marker.exec(this.stderr)?.[1]);
  }

  /** Sends `signal` to the vfio process (after {@linkcode pausedAfter}). */
  kill(signal: NodeJS.Signals): void {
    process.kill(this.pid, signal);
  }
}

/** Runs `vfio args…` to the end. */
function vfio(...args: string[]): Promise<Exit> {
  return new Vfio(args).exited;
}

async function ok(...args: string[]): Promise<string> {
  const r = await vfio(...args);
  assert.equal(r.status, 0, `vfio ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function override(): string | null {
  const v = readFileSync(sysfs("driver_override"), "utf8").trim();
  return v === "(null)" ? null : v;
}

function record(): { driver: string | null; driverOverride: string | null } | null {
  return existsSync(RECORD) ? JSON.parse(readFileSync(RECORD, "utf8")) : null;
}

interface StatusDevice {
  address: string;
  driver: string | null;
  pendingOverride: string | null;
  record: { driver: string | null } | null;
  recordError: string | null;
}

async function statusOf(): Promise<{ json: StatusDevice; text: string }> {
  const all = JSON.parse(await ok("status", "--json")) as { devices: StatusDevice[] };
  const json = all.devices.find((d) => d.address === NIC) as StatusDevice;
  const text = await ok("status");
  const at = text.indexOf(`  ${NIC}  `);
  return { json, text: text.slice(at, text.indexOf("\n  0000:", at + 1) >>> 0) };
}

/** Back to the starting state whatever happened: on e1000e, no override, no record. */
async function restored(): Promise<void> {
  const r = await vfio("restore", NIC);
  assert.equal(r.status, 0, `restore: ${r.stderr}`);
  assert.equal(driverOf(NIC), "e1000e");
  assert.equal(override(), null);
  assert.equal(record(), null);
}

describe("bind safety in the guest", {
  skip: !guest.inVm ? "not in the guest (VFIO_TS_IN_VM unset)" : !NIC ? "no e1000e on its kernel driver" : false,
}, () => {
  it(
    "SIGTERM or SIGINT between steps: the bind completes, then the process exits 128+n",
    { timeout: LONG },
    async () => {
      for (const [i, step] of STEPS.entries()) {
        const signal = i === 1 ? "SIGINT" : "SIGTERM";
        const p = new Vfio(["bind", NIC, "--force"], { VFIO_TS_BIND_PAUSE_AFTER: step, VFIO_TS_BIND_PAUSE_MS: "1500" });
        await p.pausedAfter(step);
        p.kill(signal);
        const r = await p.exited;
        assert.equal(r.status, signal === "SIGINT" ? 130 : 143, `${signal} after ${step}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`vfio: ${signal}: the driver changes already started were finished`));
        assert.equal(driverOf(NIC), "vfio-pci", `after ${signal} at ${step} the bind completed`);
        assert.equal(record()?.driver, "e1000e");
        await restored();
      }
    },
  );

  it("SIGKILL between steps: status shows what is left, restore puts e1000e back", { timeout: LONG }, async () => {
    const expected: Record<(typeof STEPS)[number], [string | null, string | null]> = {
      record: [null, "e1000e"], // [pending override, driver]
      driver_override: ["vfio-pci", "e1000e"],
      unbind: ["vfio-pci", null],
      drivers_probe: [null, "vfio-pci"],
    };
    for (const step of STEPS) {
      const p = new Vfio(["bind", NIC, "--force"], { VFIO_TS_BIND_PAUSE_AFTER: step, VFIO_TS_BIND_PAUSE_MS: "60000" });
      await p.pausedAfter(step);
      p.kill("SIGKILL");
      assert.equal((await p.exited).status, 128 + 9);
      const [pending, driver] = expected[step];
      assert.equal(driverOf(NIC), driver, `driver after a kill at ${step}`);
      assert.deepEqual(record(), { address: NIC, driver: "e1000e", driverOverride: null });
      const s = await statusOf();
      assert.equal(s.json.pendingOverride, pending, `pending override after ${step}`);
      assert.equal(s.json.record?.driver, "e1000e");
      if (pending) assert.match(s.text, new RegExp(`driver_override ${pending} pending.*vfio restore ${NIC}`));
      if (driver !== "vfio-pci") assert.match(s.text, /record left behind \(was on e1000e before vfio bind\)/);
      else assert.match(s.text, /recorded original driver e1000e/);
      await restored();
      const after = await statusOf();
      assert.deepEqual([after.json.pendingOverride, after.json.record], [null, null]);
      assert.doesNotMatch(after.text, /pending|record left behind/);
    }
  });

  it("two binds of one device are serialised; a waiter that gives up names the holder", { timeout: LONG }, async () => {
    const a = new Vfio(["bind", NIC, "--force"], {
      VFIO_TS_BIND_PAUSE_AFTER: "driver_override",
      VFIO_TS_BIND_PAUSE_MS: "6000",
    });
    await a.pausedAfter("driver_override");
    const b = await vfio("bind", NIC, "--force"); // waits for a's lock, then finds the device on vfio-pci
    const ra = await a.exited;
    assert.equal(ra.status, 0, ra.stderr);
    assert.equal(b.status, 0, b.stderr);
    assert.match(ra.stdout, new RegExp(`${NIC}: e1000e -> vfio-pci`));
    assert.match(b.stdout, new RegExp(`${NIC}: already on vfio-pci`));
    assert.equal(record()?.driver, "e1000e", "the record keeps the original driver, not vfio-pci");
    await restored();

    const holder = new Vfio(["bind", NIC, "--force"], {
      VFIO_TS_BIND_PAUSE_AFTER: "driver_override",
      VFIO_TS_BIND_PAUSE_MS: "60000",
    });
    try {
      await holder.pausedAfter("driver_override");
      const waiter = await vfio("restore", NIC); // gives up after the default 10 s
      assert.equal(waiter.status, 1, waiter.stderr);
      assert.match(waiter.stderr, new RegExp(`${NIC} is locked by process ${holder.pid} \\([\\w.-]+\\)`));
    } finally {
      if (holder.pid) holder.kill("SIGKILL");
      await holder.exited;
    }
    await restored();
  });

  it("a device whose driver_override was e1000e gets it back after bind and restore", { timeout: LONG }, async () => {
    writeFileSync(sysfs("driver_override"), "e1000e");
    try {
      assert.match(await ok("bind", NIC, "--force"), /e1000e -> vfio-pci/);
      assert.equal(override(), "vfio-pci");
      assert.deepEqual(record(), { address: NIC, driver: "e1000e", driverOverride: "e1000e" });
      assert.match(await ok("restore", NIC), /vfio-pci -> e1000e/);
      assert.equal(driverOf(NIC), "e1000e");
      assert.equal(override(), "e1000e", "the original driver_override is restored, not cleared");
      assert.equal(record(), null);
    } finally {
      writeFileSync(sysfs("driver_override"), "\n");
    }
    assert.equal(override(), null);
  });

  it("planted records and hostile driver names: exit 2, nothing changes", { timeout: LONG }, async () => {
    // A fresh, empty directory a hostile driver name leads to from /sys/bus/pci/drivers (not a fixed /tmp/x: the
    // guest sees the host's /tmp, where the repository itself may live).
    const trap = mkdtempSync("/tmp/vfio-ts-trap-"), hostile = `../../../..${trap}`;
    const plants: [string, () => void][] = [
      ["world-writable record", () => {
        writeFileSync(RECORD, JSON.stringify({ address: NIC, driver: "e1000e" }));
        chmodSync(RECORD, 0o666);
      }],
      [`record naming ${hostile}`, () => {
        writeFileSync(RECORD, JSON.stringify({ address: NIC, driver: hostile }), { mode: 0o600 });
      }],
      ["record with a hostile driver_override", () => {
        writeFileSync(RECORD, JSON.stringify({ address: NIC, driver: "e1000e", driverOverride: "x\ny" }), {
          mode: 0o600,
        });
      }],
      ["symlinked record", () => {
        writeFileSync("/tmp/planted.json", JSON.stringify({ address: NIC, driver: "e1000e" }));
        symlinkSync("/tmp/planted.json", RECORD);
      }],
    ];
    mkdirSync("/run/vfio-ts", { recursive: true, mode: 0o700 });
    for (const [what, plant] of plants) {
      plant();
      for (const args of [["restore", NIC], ["bind", NIC, "--force"], ["restore", NIC, "--dry-run"]]) {
        const r = await vfio(...args);
        assert.equal(r.status, 2, `${what}: vfio ${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, /^vfio: (refusing to trust|invalid driver name)/);
        assert.equal(driverOf(NIC), "e1000e");
        assert.equal(override(), null);
        assert.equal(existsSync(join(trap, "bind")), false);
      }
      rmSync(RECORD);
    }
    for (const driver of ["--help", hostile, "e1000e x", "nosuchdriver"]) {
      const r = await vfio("restore", NIC, `--driver=${driver}`);
      assert.equal(r.status, 2, `--driver=${driver}: ${r.stderr}`);
      assert.match(r.stderr, /^vfio: invalid driver name/);
    }
    assert.deepEqual(readdirSync(trap), []);
    assert.equal(driverOf(NIC), "e1000e");
    rmSync(trap, { recursive: true });
  });
});
