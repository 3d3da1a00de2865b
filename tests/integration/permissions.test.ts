// Opening a device without the privileges VFIO needs gives a typed error that says what to do, not a crash:
// the opening runs in a child process as the unprivileged user nobody (setpriv from util-linux).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { describe, it } from "node:test";
import { readableCopy } from "./fixtures/world_readable.ts";
import { guest } from "./guest.ts";

const { inVm, mode } = guest;
const edu = guest.edu ?? "";
const isBun = "Bun" in globalThis;
const FIXTURE = "tests/integration/fixtures/open_as_user.ts";
const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));

describe("permissions", { skip: (!inVm || !setpriv) && "needs the VFIO guest and setpriv" }, () => {
  it("an unprivileged user gets a clear permission error", { timeout: 180_000 }, () => {
    // nobody may not reach the checkout (a clone under /root is mode 700): it runs a world-readable copy
    using copy = readableCopy([FIXTURE]);
    const script = copy.at(FIXTURE);
    const runtime = isBun ? [copy.runtime, script] : [copy.runtime, "run", "-A", "--no-check", script];
    const r = spawnSync(
      setpriv!,
      ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", ...runtime, edu, mode],
      {
        cwd: copy.dir,
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, HOME: copy.home, DENO_DIR: copy.home, BUN_INSTALL_CACHE_DIR: copy.home },
      },
    );
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.equal(out.opened, false, "nobody must not open a VFIO device");
    if (mode === "noiommu") {
      // no-IOMMU needs CAP_SYS_RAWIO (and CAP_SYS_ADMIN for physical addresses): checked before any open
      assert.match(out.message, /CAP_SYS_RAWIO/);
    } else {
      assert.equal(out.name, "SystemError", out.message);
      assert.match(out.code, /^(EACCES|EPERM)$/);
      assert.match(out.message, /run as root/);
    }
  });
});
