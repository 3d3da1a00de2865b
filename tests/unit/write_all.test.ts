/**
 * `writeAllSync` (lib/write_all.ts): whole strings and buffers, at the descriptor's offset or at a given one, and
 * errors. Run: `node_modules/deno/deno test -A tests/unit/write_all.test.ts` or `bun test tests/unit/write_all.test.ts`.
 * @module
 */
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { writeAllSync } from "../../lib/write_all.ts";

describe("writeAllSync", () => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-ts-write-all-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes a long string of multi-byte characters and a buffer, one after the other", () => {
    const path = join(dir, "long"), fd = openSync(path, "w");
    const text = "äöü line\n".repeat(200_000); // 2.4 MB, 3 bytes of UTF-8 per two characters
    const bytes = new Uint8Array(70_000).map((_, i) => i & 0xff);
    writeAllSync(fd, text);
    writeAllSync(fd, bytes);
    closeSync(fd);
    const back = readFileSync(path);
    const head = new TextEncoder().encode(text);
    assert.equal(back.length, head.length + bytes.length);
    assert.deepEqual(new Uint8Array(back.subarray(0, head.length)), head);
    assert.deepEqual(new Uint8Array(back.subarray(head.length)), bytes);
  });

  it("writes at a given position without moving the descriptor's offset", () => {
    const path = join(dir, "positioned"), fd = openSync(path, "w");
    writeAllSync(fd, "hello\n");
    writeAllSync(fd, "J", 0);
    writeAllSync(fd, "world\n");
    closeSync(fd);
    assert.equal(readFileSync(path, "utf8"), "Jello\nworld\n");
  });

  it("writes nothing for empty data", () => {
    const path = join(dir, "empty"), fd = openSync(path, "w");
    writeAllSync(fd, "");
    writeAllSync(fd, new Uint8Array(0));
    closeSync(fd);
    assert.equal(readFileSync(path).length, 0);
  });

  it("throws the system's error for a closed descriptor", () => {
    const fd = openSync(join(dir, "closed"), "w");
    closeSync(fd);
    assert.throws(() => writeAllSync(fd, "x"), (e: NodeJS.ErrnoException) => e.code === "EBADF");
  });
});
