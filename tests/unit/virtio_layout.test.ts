// The virtio layouts of the example drivers (examples/nic/virtio_pci.ts, virtio_queue.ts, virtio_modern.ts) against
// the kernel's uapi headers (linux/virtio_pci.h, virtio_ring.h, virtio_net.h) of this machine: a C program prints
// offsetof and sizeof of every field, which must match the struct descriptions. Skipped without gcc or the headers.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { StructDef } from "../../abi.ts";
import { VirtioNetConfig } from "../../examples/nic/virtio_modern.ts";
import { VirtioPciCap, VirtioPciCommonCfg, VirtioPciNotifyCap } from "../../examples/nic/virtio_pci.ts";
import { VirtioNetHdrV1, VringAvail, VringDesc, VringUsed, VringUsedElem } from "../../examples/nic/virtio_queue.ts";

// [layout, whether its size is the whole C struct (virtio_net_config is described only up to mtu)]
const STRUCTS: [StructDef, boolean][] = [
  [VirtioPciCap, true],
  [VirtioPciNotifyCap, true],
  [VirtioPciCommonCfg, true],
  [VringDesc, true],
  [VringAvail, true],
  [VringUsedElem, true],
  [VringUsed, true],
  [VirtioNetHdrV1, true],
  [VirtioNetConfig, false],
];

const haveGcc = spawnSync("gcc", ["--version"]).status === 0;
const haveHeaders = existsSync("/usr/include/linux/virtio_pci.h") && existsSync("/usr/include/linux/virtio_net.h");

test("virtio struct layouts match linux/virtio_{pci,ring,net}.h", {
  skip: !(haveGcc && haveHeaders) && "needs gcc and the kernel uapi headers (linux-libc-dev)",
  timeout: 60_000,
}, () => {
  const lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <linux/virtio_pci.h>"];
  lines.push("#include <linux/virtio_ring.h>", "#include <linux/virtio_net.h>", "int main(void) {");
  const expected: string[] = [];
  for (const [def, whole] of STRUCTS) {
    const s = `struct ${def.cName}`;
    if (whole) {
      lines.push(`printf("${def.cName} %zu\\n", sizeof(${s}));`);
      expected.push(`${def.cName} ${def.size}`);
    }
    for (const f of def.fields) {
      lines.push(
        `printf("${def.cName}.${f.name} %zu %zu\\n", offsetof(${s}, ${f.name}), sizeof(((${s} *)0)->${f.name}));`,
      );
      expected.push(`${def.cName}.${f.name} ${f.offset} ${f.width}`);
    }
  }
  lines.push("return 0; }");
  const dir = mkdtempSync(join(tmpdir(), "virtio-layout-"));
  try {
    writeFileSync(join(dir, "t.c"), lines.join("\n"));
    const cc = spawnSync("gcc", ["-o", join(dir, "t"), join(dir, "t.c")], { encoding: "utf8" });
    assert.equal(cc.status, 0, cc.stderr);
    const out = spawnSync(join(dir, "t"), { encoding: "utf8" });
    assert.deepEqual(out.stdout.trim().split("\n"), expected);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
