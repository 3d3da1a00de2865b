/**
 * Writing a whole string or buffer to a file descriptor. `write(2)`, and `writeSync` of `node:fs` over it, may write
 * fewer bytes than asked (a signal, a full pipe, a file size limit) and say so only in the count they return; the
 * library's records and trace lines are written through here, so that a short write is continued instead of leaving
 * half a line.
 *
 * ```ts
 * import { writeAllSync } from "./write_all.ts";
 * writeAllSync(2, "to standard error, all of it\n");
 * ```
 * @module
 */
import { writeSync } from "node:fs";

/**
 * Writes all of `data` to `fd`, continuing after short writes; at file offset `position` when given (then the
 * descriptor's own offset is left alone), else at the descriptor's offset. Throws what `writeSync` throws (a
 * `SystemError` with the errno), or an `Error` when a write makes no progress.
 *
 * ```ts
 * import { openSync, closeSync, readFileSync } from "node:fs";
 * import { writeAllSync } from "./write_all.ts";
 * const fd = openSync("/tmp/write_all-example.txt", "w");
 * writeAllSync(fd, "hello\n");
 * writeAllSync(fd, "J", 0);
 * closeSync(fd);
 * console.log(readFileSync("/tmp/write_all-example.txt", "utf8")); // "Jello\n"
 * ```
 */
export function writeAllSync(fd: number, data: string | Uint8Array, position?: number): void {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  for (let done = 0; done < bytes.length;) {
    const n = writeSync(fd, bytes, done, bytes.length - done, position === undefined ? null : position + done);
    if (n <= 0) throw new Error(`write to fd ${fd} made no progress after ${done} of ${bytes.length} bytes`);
    done += n;
  }
}
