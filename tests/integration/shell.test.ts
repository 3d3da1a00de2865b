// `vfio shell` driven through stdin in the guest, on the runtime under test: on edu it reads the id register, has
// edu compute a factorial, enables MSI, has edu raise an interrupt and awaits it, dumps BAR0 as hex, allocates a
// DMA buffer, keeps values across lines, reports a bad line without ending the session, and closes the device at
// .exit (it opens again afterwards); on a mediated device (--mdev, iommu modes) it opens and closes the mtty.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openDevice } from "../../lib/open.ts";
import { createMdev, removeMdev } from "../../lib/sysfs/mdev.ts";
import { guest, skipIf, skipUnless } from "./guest.ts";

const edu = guest.edu ?? "";
const ENTRY = join(import.meta.dirname ?? ".", "../../cli/vfio.ts");

function vfioShell(args: string[], input: string): { code: number; stdout: string; stderr: string } {
  const [exe, ...rest] = guest.runtime === "bun"
    ? [guest.bins.bun, ENTRY, "shell", ...args]
    : [guest.bins.deno, "run", "-A", "--no-check", ENTRY, "shell", ...args];
  const r = spawnSync(exe, rest, { input, encoding: "utf8", timeout: 180_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

describe("vfio shell", { timeout: 400_000 }, () => {
  it("reads a register, triggers and awaits an MSI, dumps BAR0, exits", { skip: skipIf(guest.edu, "edu") }, () => {
    const input = [
      "dev.config.enableMemory(); dev.config.enableBusMaster()",
      "bar0.read32(0)",
      "write(0, 0x8, 5)",
      "while (read(bar0, 0x20) & 1) {}",
      "read(0, 0x8)",
      "const msi = irqs('MSI', 1)",
      "bar0.write32(0x60, 0x1234)",
      "await wait(msi, 0, 5000)",
      "bar0.write32(0x64, 0x1234)",
      "hexdump(bar0, 0, 16)",
      "buf = dma(4096)",
      "buf.u8[0] = 0xab",
      "hexdump(buf, 0, 4)",
      "no_such_name.read32(0)",
      "dev.iommu",
      ".exit",
      "bar0.read32(0)", // after .exit: never evaluated
    ].join("\n") + "\n";
    const r = vfioShell([edu, ...guest.noiommuFlag], input);
    const out = r.stdout;
    assert.equal(r.code, 0, `stdout:\n${out}\nstderr:\n${r.stderr}`);
    const lines = out.split("\n");
    assert.match(lines[0], new RegExp(`^${edu.replaceAll(".", "\\.")} open \\(`));
    assert.ok(lines.includes("16777453 (0x10000ed)"), out); // edu's id
    assert.ok(lines.includes("120 (0x78)"), out); // 5!
    assert.ok(lines.includes("1 (0x1)"), out); // one MSI awaited
    // id and liveness (the factorial word is not checked: another test's edu use can have changed it meanwhile)
    assert.match(out, /^00000000 {2}ed 00 00 01 [0-9a-f]{2} [0-9a-f]{2} [0-9a-f]{2} [0-9a-f]{2} [0-9a-f]{2} /m);
    assert.match(out, /^DmaBuffer \{/m);
    assert.ok(lines.includes("00000000  ab 00 00 00                                      ...."), out);
    assert.match(out, /^error: ReferenceError: no_such_name is not defined$/m);
    const backend = guest.mode === "noiommu" ? "noiommu" : guest.mode === "iommu" ? "type1" : "iommufd";
    assert.ok(lines.includes(backend), out);
    assert.equal(lines.filter((l) => l === "16777453 (0x10000ed)").length, 1, "nothing runs after .exit");
    assert.ok(lines.includes(`${edu} closed`), out);
    // everything was released: the device opens again
    using dev = openDevice(edu, { noiommu: guest.mode === "noiommu" });
    assert.equal(dev.closed, false);
  });

  it(
    "end of input closes the session too; a bad device is a one-line error",
    { skip: skipIf(guest.edu, "edu") },
    () => {
      const r = vfioShell([edu, ...guest.noiommuFlag], "1 + 1\n");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^2 \(0x2\)$/m);
      assert.match(r.stdout, /closed$/m);
      const bad = vfioShell(["0000:00:1f.7"], "");
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /^vfio: /);
    },
  );

  it("--mdev opens a mediated device", {
    skip: skipUnless(guest.mode === "noiommu" && "no mtty in the rig's noiommu mode"),
  }, () => {
    const uuid = createMdev("mtty", "mtty-1");
    try {
      const r = vfioShell(["--mdev", uuid], "dev.groupType\nbar0.size\n.exit\n");
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^emulated-iommu$/m);
      assert.match(r.stdout, /^8 \(0x8\)$/m);
      assert.match(r.stdout, new RegExp(`^${uuid} closed$`, "m"));
    } finally {
      removeMdev(uuid);
    }
  });
});
