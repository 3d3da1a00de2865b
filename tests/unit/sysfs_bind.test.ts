// Binding safety on a fake sysfs tree: driver records are trusted only when root alone can have written them
// (planted, foreign-owned, group/world-writable, symlinked records and directories are refused), hostile driver
// names never reach a path or modprobe (nothing outside the intended sysfs files is written: the whole tree is
// compared before and after), records are created exclusively without following links, there is no /tmp fallback,
// the per-device lock names its holder, a rollback restores the original driver_override, and the CLI exits 2 on
// bad driver names. The kernel's side (real binds, kills between steps, concurrent binds) is tested in the guest
// by tests/integration/bind_safety.test.ts.
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, beforeEach, describe, it } from "node:test";
import { main } from "../../cli/vfio.ts";
import { DeviceLockedError, InvalidDriverError, RecordsDirError, UntrustedRecordError } from "../../lib/errors.ts";
import { shellQuote } from "../../lib/shell_quote.ts";
import { bindToVfio, describeStep, restoreDriver, unbind } from "../../lib/sysfs/bind.ts";
import { checkDriverName, pciDriverSource } from "../../lib/sysfs/driver_name.ts";
import { recordedDriver, writeDriverRecord } from "../../lib/sysfs/driver_record.ts";
import { lockDevice } from "../../lib/sysfs/lock.ts";
import { modprobe } from "../../lib/sysfs/modprobe.ts";
import { treeFile, treeLink } from "./fake_tree.ts";

const NIC = "0000:00:05.0";
const HOSTILE = ["../../../../tmp/x", "--help", "e1000e/../../x", "e1000e x", "e1000e\n", "-", "", ".."];
let root = "";
const roots: string[] = [];

const file = (path: string, text: string): void => treeFile(root, path, text);
const link = (path: string, target: string): void => treeLink(root, path, target);

/** Every path under the fake root with its content (files), target (links) or "dir". */
function snapshot(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.set(p, `-> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.set(p, `dir ${(st.mode & 0o7777).toString(8)}`);
        walk(p);
      } else out.set(p, readFileSync(p, "utf8"));
    }
  };
  walk(root);
  return out;
}

/** A device on e1000e (driver_override `override`), e1000e and vfio-pci loaded, /run as on a real system. */
function fakeTree(override = "(null)"): void {
  root = mkdtempSync(join(tmpdir(), "vfio-ts-bind-"));
  roots.push(root);
  for (const d of ["e1000e", "vfio-pci"]) {
    file(`/sys/bus/pci/drivers/${d}/bind`, "");
    file(`/sys/bus/pci/drivers/${d}/unbind`, "");
  }
  file("/sys/bus/pci/drivers_probe", "");
  const dir = `/sys/devices/pci0000:00/${NIC}`;
  file(`${dir}/vendor`, "0x8086\n");
  file(`${dir}/device`, "0x10d3\n");
  file(`${dir}/class`, "0x020000\n");
  file(`${dir}/driver_override`, `${override}\n`);
  link(`/sys/bus/pci/devices/${NIC}`, `../../../devices/pci0000:00/${NIC}`);
  link(`${dir}/driver`, "../../../bus/pci/drivers/e1000e");
  link(`${dir}/iommu_group`, "../../../kernel/iommu_groups/5");
  mkdirSync(join(root, "run"), { mode: 0o755 });
  mkdirSync(join(root, "tmp/x"), { recursive: true }); // where `../../../../tmp/x` would lead from drivers/
  file("/proc/sys/kernel/osrelease", "6.12.0-test\n");
  file("/lib/modules/6.12.0-test/modules.dep", "kernel/drivers/net/ethernet/intel/igb/igb.ko.xz:\n");
}

const recordFile = (): string => join(root, `run/vfio-ts/${NIC}.json`);

function plantRecord(content: object | string, mode = 0o600): void {
  mkdirSync(join(root, "run/vfio-ts"), { recursive: true, mode: 0o700 });
  writeFileSync(recordFile(), typeof content === "string" ? content : JSON.stringify(content), { mode });
  chmodSync(recordFile(), mode);
}

/** Runs `f`, expects it to throw `type`, and checks that nothing in the fake tree changed. */
type ErrorClass = new (...a: never[]) => Error;

function refusedUnchanged(type: ErrorClass, f: () => unknown, pattern?: RegExp): void {
  const before = snapshot();
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof type, `${type.name} expected, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    if (pattern) assert.match((e as Error).message, pattern);
    return true;
  });
  assert.deepEqual(snapshot(), before, "nothing in the tree changed");
  assert.equal(existsSync(join(root, "tmp/x/bind")), false);
}

beforeEach(() => fakeTree());

after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

describe("shell quoting of printed commands", () => {
  it("leaves plain words alone and single-quotes the rest", () => {
    assert.equal(
      shellQuote("/sys/bus/pci/devices/0000:00:05.0/driver_override"),
      "/sys/bus/pci/devices/0000:00:05.0/driver_override",
    );
    assert.equal(shellQuote("vfio-pci"), "vfio-pci");
    assert.equal(shellQuote(""), "''");
    assert.equal(shellQuote("a b"), "'a b'");
    assert.equal(shellQuote("$(reboot)"), "'$(reboot)'");
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
    assert.equal(shellQuote("x\ny"), "'x\ny'");
  });

  it("describes steps as commands a shell runs as they are", () => {
    const path = "/tmp/a dir/it's/driver_override";
    assert.equal(
      describeStep({ kind: "write", path, value: "vfio-pci", purpose: "" }),
      `echo vfio-pci > '/tmp/a dir/it'\\''s/driver_override'`,
    );
    assert.equal(describeStep({ kind: "write", path: "/p", value: "\n", purpose: "" }), "echo > /p");
    assert.equal(describeStep({ kind: "write", path: "/p", value: "-n", purpose: "" }), "printf '%s\\n' -n > /p");
    assert.equal(
      describeStep({ kind: "modprobe", module: "vfio", params: ["a=b c"], purpose: "" }),
      "modprobe vfio 'a=b c'",
    );
    const plan = bindToVfio(NIC, { root, dryRun: true }).steps.map(describeStep);
    assert.deepEqual(plan, [
      `echo vfio-pci > ${root}/sys/bus/pci/devices/${NIC}/driver_override`,
      `echo ${NIC} > ${root}/sys/bus/pci/drivers/e1000e/unbind`,
      `echo ${NIC} > ${root}/sys/bus/pci/drivers_probe`,
    ]);
  });
});

describe("driver names", () => {
  it("accepts kernel names and refuses paths, options, white space and unknown drivers", () => {
    for (const ok of ["e1000e", "vfio-pci", "snd_hda_intel", "8250_pci", "ehci-pci"]) checkDriverName(ok);
    for (const bad of HOSTILE) assert.throws(() => checkDriverName(bad), InvalidDriverError, JSON.stringify(bad));
    assert.equal(pciDriverSource("e1000e", { root }), "loaded");
    assert.equal(pciDriverSource("igb", { root }), "module");
    assert.throws(() => pciDriverSource("nosuchdriver", { root }), /no such PCI driver is loaded and no such module/);
    assert.throws(() => modprobe("--help"), InvalidDriverError);
    assert.throws(() => modprobe("vfio", ["-r"]), InvalidDriverError);
  });

  it("restore --driver with a hostile or unknown name plans nothing and writes nothing", () => {
    for (const driver of [...HOSTILE.filter((d) => d !== ""), "nosuchdriver"]) {
      refusedUnchanged(InvalidDriverError, () => restoreDriver(NIC, { root, dryRun: true, driver }));
      refusedUnchanged(InvalidDriverError, () => restoreDriver(NIC, { root, driver }));
    }
  });

  it("a hostile driver or driver_override in sysfs itself is refused before use", () => {
    rmSync(join(root, `sys/devices/pci0000:00/${NIC}/driver`));
    link(`/sys/devices/pci0000:00/${NIC}/driver`, "../../../bus/pci/drivers/--help");
    refusedUnchanged(InvalidDriverError, () => bindToVfio(NIC, { root }));
    refusedUnchanged(InvalidDriverError, () => unbind(NIC, { root }));
    fakeTree("../../../../tmp/x");
    refusedUnchanged(InvalidDriverError, () => bindToVfio(NIC, { root }));
  });
});

describe("driver records", () => {
  it("are written to a root-only directory, exclusively, and read back", () => {
    writeDriverRecord({ address: NIC, driver: "e1000e", driverOverride: null }, { root });
    assert.equal(lstatSync(join(root, "run/vfio-ts")).mode & 0o777, 0o700);
    assert.equal(lstatSync(recordFile()).mode & 0o777, 0o600);
    assert.deepEqual(recordedDriver(NIC, { root }), { address: NIC, driver: "e1000e", driverOverride: null });
    assert.deepEqual(readdirSync(join(root, "run/vfio-ts")), [`${NIC}.json`], "no temporary file left");
  });

  it("honour a records-dir option with the same checks", () => {
    const dir = join(root, "elsewhere");
    writeDriverRecord({ address: NIC, driver: "e1000e", driverOverride: null }, { root, recordsDir: dir });
    assert.equal(recordedDriver(NIC, { root, recordsDir: dir })?.driver, "e1000e");
    assert.equal(recordedDriver(NIC, { root }), null);
    chmodSync(dir, 0o777);
    assert.throws(() => recordedDriver(NIC, { root, recordsDir: dir }), UntrustedRecordError);
  });

  it("never follow a planted link when written", () => {
    mkdirSync(join(root, "run/vfio-ts"), { mode: 0o700 });
    writeFileSync(join(root, "victim"), "precious");
    symlinkSync(join(root, "victim"), join(root, `run/vfio-ts/.${NIC}.json.${process.pid}.tmp`));
    assert.throws(
      () => writeDriverRecord({ address: NIC, driver: "e1000e", driverOverride: null }, { root }),
      RecordsDirError,
    );
    assert.equal(readFileSync(join(root, "victim"), "utf8"), "precious");
  });

  it("have no /tmp fallback: a missing /run is an error that says so", () => {
    rmSync(join(root, "run"), { recursive: true });
    refusedUnchanged(RecordsDirError, () => bindToVfio(NIC, { root }), /run does not exist.*no records anywhere else/);
    assert.equal(existsSync(join(root, "tmp/vfio-ts")), false);
  });

  const planted: [string, () => void, RegExp][] = [
    ["a record owned by another user", () => {
      plantRecord({ address: NIC, driver: "e1000e" });
      chownSync(recordFile(), 65534, 65534);
    }, /owned by uid 65534, not root/],
    ["a group-writable record", () => plantRecord({ address: NIC, driver: "e1000e" }, 0o620), /writable by group/],
    ["a world-writable record", () => plantRecord({ address: NIC, driver: "e1000e" }, 0o666), /writable by group/],
    ["a world-writable directory", () => {
      plantRecord({ address: NIC, driver: "e1000e" });
      chmodSync(join(root, "run/vfio-ts"), 0o777);
    }, /vfio-ts: it is writable by group or others \(mode 0777\)/],
    ["a directory owned by another user", () => {
      plantRecord({ address: NIC, driver: "e1000e" });
      chownSync(join(root, "run/vfio-ts"), 65534, 65534);
    }, /vfio-ts: it is owned by uid 65534/],
    ["a world-writable parent", () => {
      plantRecord({ address: NIC, driver: "e1000e" });
      chmodSync(join(root, "run"), 0o777);
    }, /run: it is writable by group or others/],
    ["a symlinked record", () => {
      mkdirSync(join(root, "run/vfio-ts"), { mode: 0o700 });
      writeFileSync(join(root, "elsewhere.json"), JSON.stringify({ address: NIC, driver: "e1000e" }));
      symlinkSync(join(root, "elsewhere.json"), recordFile());
    }, /json: it is a symbolic link/],
    ["a symlinked directory", () => {
      mkdirSync(join(root, "planted"), { mode: 0o700 });
      writeFileSync(join(root, "planted", `${NIC}.json`), JSON.stringify({ address: NIC, driver: "e1000e" }));
      symlinkSync(join(root, "planted"), join(root, "run/vfio-ts"));
    }, /vfio-ts: it is a symbolic link/],
    ["a record that is not JSON", () => plantRecord("e1000e"), /it is not JSON/],
    ["a record of another device", () => plantRecord({ address: "0000:00:06.0", driver: "e1000e" }), /not a record of/],
  ];
  for (const [what, plant, pattern] of planted) {
    it(`refuse ${what}, and restore and bind then change nothing`, () => {
      plant();
      assert.throws(() => recordedDriver(NIC, { root }), (e: unknown) => e instanceof UntrustedRecordError);
      refusedUnchanged(UntrustedRecordError, () => restoreDriver(NIC, { root }), pattern);
      refusedUnchanged(UntrustedRecordError, () => restoreDriver(NIC, { root, dryRun: true }), pattern);
      refusedUnchanged(UntrustedRecordError, () => bindToVfio(NIC, { root }), pattern);
    });
  }

  it("refuse hostile driver names inside a root-owned record", () => {
    for (const driver of HOSTILE) {
      for (const record of [{ address: NIC, driver }, { address: NIC, driver: "e1000e", driverOverride: driver }]) {
        plantRecord(record);
        refusedUnchanged(InvalidDriverError, () => restoreDriver(NIC, { root }));
        refusedUnchanged(InvalidDriverError, () => restoreDriver(NIC, { root, dryRun: true }));
      }
    }
    plantRecord({ address: NIC, driver: 42 });
    refusedUnchanged(UntrustedRecordError, () => restoreDriver(NIC, { root }), /driver is not a string/);
  });
});

describe("the device lock", () => {
  it("is exclusive per open file, names its holder's pid, and is released by close", () => {
    const held = lockDevice(NIC, { root });
    assert.equal(readFileSync(join(root, `run/vfio-ts/${NIC}.lock`), "utf8"), `${process.pid}\n`);
    const start = Date.now();
    assert.throws(() => lockDevice(NIC, { root, lockTimeoutMs: 300 }), (e: unknown) => {
      assert.ok(e instanceof DeviceLockedError);
      assert.equal(e.holderPid, process.pid);
      assert.match(e.message, new RegExp(`${NIC} is locked by process ${process.pid}.*gave up after \\d+ ms`));
      return true;
    });
    assert.ok(Date.now() - start >= 250, "it waited");
    assert.throws(() => bindToVfio(NIC, { root, lockTimeoutMs: 100 }), DeviceLockedError);
    assert.throws(() => restoreDriver(NIC, { root, lockTimeoutMs: 100 }), DeviceLockedError);
    assert.throws(() => unbind(NIC, { root, lockTimeoutMs: 100 }), DeviceLockedError);
    held.close();
    held.close(); // idempotent
    lockDevice(NIC, { root, lockTimeoutMs: 0 }).close();
  });

  it("refuses a planted lock file link", () => {
    mkdirSync(join(root, "run/vfio-ts"), { mode: 0o700 });
    writeFileSync(join(root, "victim"), "precious");
    symlinkSync(join(root, "victim"), join(root, `run/vfio-ts/${NIC}.lock`));
    assert.throws(() => lockDevice(NIC, { root }), UntrustedRecordError);
    assert.equal(readFileSync(join(root, "victim"), "utf8"), "precious");
  });
});

describe("rollback of a failed bind (writes land in the fake tree; no kernel acts on them)", () => {
  it("puts back the device's original driver_override, not an empty one", () => {
    fakeTree("e1000e");
    const steps: string[] = [];
    assert.throws(() => bindToVfio(NIC, { root, onStep: (s) => steps.push(s) }), /did not bind to vfio-pci/);
    assert.deepEqual(steps, ["record", "driver_override", "unbind", "drivers_probe", "driver_override"]);
    const override = readFileSync(join(root, `sys/devices/pci0000:00/${NIC}/driver_override`), "utf8");
    assert.equal(override, "e1000e", "the original override is back");
    assert.equal(recordedDriver(NIC, { root }), null, "the record is gone after the rollback");
  });

  it("restores a recorded override with the recorded driver", () => {
    plantRecord({ address: NIC, driver: "e1000e", driverOverride: "e1000e" });
    const plan = restoreDriver(NIC, { root, dryRun: true });
    assert.deepEqual(plan.steps.map(describeStep), [
      `echo e1000e > ${root}/sys/bus/pci/devices/${NIC}/driver_override`,
    ]);
  });
});

describe("vfio restore on bad driver names (the host's own devices, --dry-run only)", () => {
  function run(...args: string[]): { code: number; stderr: string } {
    const err = process.stderr as unknown as { write: unknown };
    const saved = err.write;
    let stderr = "";
    err.write = (chunk: string | Uint8Array): boolean => {
      stderr += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
      return true;
    };
    try {
      return { code: main(args), stderr };
    } finally {
      err.write = saved;
    }
  }
  const device = existsSync("/sys/bus/pci/devices") ? readdirSync("/sys/bus/pci/devices")[0] : undefined;

  it("exits 2 with one line naming the problem", { skip: device ? false : "no PCI devices here" }, () => {
    for (const driver of ["--help", "../../x", "a/b", "e1000e x", "nosuchdriver"]) {
      const r = run("restore", device as string, `--driver=${driver}`, "--dry-run");
      assert.equal(r.code, 2, `--driver=${JSON.stringify(driver)}: ${r.stderr}`);
      assert.match(r.stderr, /^vfio: invalid driver name /);
      assert.equal(r.stderr.trim().split("\n").length, 1);
    }
  });
});
