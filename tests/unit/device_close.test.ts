// Device.close on a real fd (/dev/null) with recording resources: every close path runs, in the documented order,
// and every error is reported (one as it is, several as a SuppressedError chain); a resource the user closes
// itself is forgotten by its device at once.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { O_CLOEXEC, O_RDONLY } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import { Device, type Owned } from "../../lib/device.ts";
import { NoiommuMapper } from "../../lib/iommu/noiommu.ts";

function recorder(log: string[], name: string, fails = false): Owned {
  return {
    close(): void {
      log.push(name);
      if (fails) throw new Error(`${name} failed`);
    },
  };
}

function device(log: string[], after: Owned[] = [recorder(log, "group"), recorder(log, "container")]): Device {
  const fd = libc.open("/dev/null", O_RDONLY | O_CLOEXEC);
  return new Device({ fd, name: "test", iommu: "noiommu", mapper: new NoiommuMapper(), after });
}

/** Every error of a SuppressedError chain, earliest first. */
function chain(e: unknown): unknown[] {
  const out: unknown[] = [];
  while (e instanceof SuppressedError) {
    out.unshift(e.error);
    e = e.suppressed;
  }
  out.unshift(e);
  return out;
}

describe("Device.close", () => {
  it("closes what it owns newest first, then its fd, then what it was opened through", () => {
    const log: string[] = [];
    const dev = device(log);
    dev.own(recorder(log, "buffer"));
    dev.own(recorder(log, "irqs"));
    dev.close();
    assert.deepEqual(log, ["irqs", "buffer", "group", "container"]);
    assert.equal(dev.closed, true);
    dev.close();
    assert.equal(log.length, 4, "idempotent");
  });

  it("runs every step when some fail, and reports every error", () => {
    const log: string[] = [];
    const dev = device(log, [recorder(log, "group", true), recorder(log, "container")]);
    dev.own(recorder(log, "a", true));
    dev.own(recorder(log, "b"));
    dev.own(recorder(log, "c", true));
    let thrown: unknown;
    try {
      dev.close();
    } catch (e) {
      thrown = e;
    }
    assert.deepEqual(log, ["c", "b", "a", "group", "container"], "every step ran");
    assert.ok(thrown instanceof SuppressedError, `a SuppressedError, got ${thrown}`);
    assert.deepEqual(chain(thrown).map((e) => (e as Error).message), ["c failed", "a failed", "group failed"]);
  });

  it("throws a single error as it is", () => {
    const log: string[] = [];
    const dev = device(log);
    dev.own(recorder(log, "only", true));
    assert.throws(() => dev.close(), (e: Error) => !(e instanceof SuppressedError) && e.message === "only failed");
    assert.deepEqual(log, ["only", "group", "container"]);
  });

  it("forgets a resource its user closes, so it is not kept nor closed twice", () => {
    const log: string[] = [];
    const dev = device(log);
    const kept = dev.own(recorder(log, "kept"));
    for (let i = 0; i < 1000; i++) dev.own(recorder(log, `buffer ${i}`)).close();
    assert.equal(log.length, 1000);
    log.length = 0;
    dev.close();
    assert.deepEqual(log, ["kept", "group", "container"]);
    kept.close();
    assert.equal(log.at(-1), "kept", "the user's own close still closes");
  });
});
