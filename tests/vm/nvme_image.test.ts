// Host side of the NVMe example: blocks examples/nvme.ts writes in the guest are in the image file on the host once
// the guest has exited, where they were written, and nothing around them changed. Boots one guest (Deno only: the rig
// is a Deno program). Run: node_modules/deno/deno test -A tests/vm/nvme_image.test.ts (tools/test.sh does).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { skipBecause } from "../skip.ts";

const BLOCK = 512;
const LBA = 20_000;
const BLOCKS = 24;
const SEED = 0x7e57da7a;

/** The example's pattern: each 32-bit little-endian word is the low 32 bits of its byte offset XOR the seed. */
function firstMismatch(image: Uint8Array, from: number, bytes: number, seed: number): number {
  const view = new DataView(image.buffer, image.byteOffset + from, bytes);
  for (let i = 0; i < bytes; i += 4) if (view.getUint32(i, true) !== (((from + i) ^ seed) >>> 0)) return from + i;
  return -1;
}

test(
  "nvme.ts --write in the guest lands in the host's image file",
  { skip: skipBecause(!("Deno" in globalThis) && "Deno only") },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "vfio-ts-nvme-image-"));
    try {
      const image = join(dir, "nvme.img"); // missing: the rig creates it with the seed-0 pattern in its first MiB
      const args = ["--devices", "nvme", "--nvme-image", image, "examples/nvme.ts"]; // the example finds the 1b36:0010
      const script = [...args, "--write", "--lba", String(LBA), "--blocks", String(BLOCKS), "--seed", String(SEED)];
      const r = spawnSync(process.execPath, ["run", "-A", "tests/vm/vm.ts", ...script], {
        encoding: "utf8",
        timeout: 300_000,
      });
      const out = `${r.stdout}${r.stderr}`;
      assert.equal(r.status, 0, out);
      assert.match(out, /all checks passed/);

      const bytes = new Uint8Array(readFileSync(image));
      assert.equal(bytes.length, 64 * 1024 * 1024);
      assert.equal(firstMismatch(bytes, LBA * BLOCK, BLOCKS * BLOCK, SEED), -1, "the written blocks");
      assert.equal(firstMismatch(bytes, 0, 1024 * 1024, 0), -1, "the rig's pattern in the first MiB, untouched");
      const around = [
        ...bytes.subarray((LBA - 1) * BLOCK, LBA * BLOCK),
        ...bytes.subarray((LBA + BLOCKS) * BLOCK, (LBA + BLOCKS + 1) * BLOCK),
      ];
      assert.ok(around.every((b) => b === 0), "the blocks either side stay zero");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
