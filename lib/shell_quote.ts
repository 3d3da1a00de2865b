/**
 * Quoting words for a POSIX shell, so that printed commands (`vfio bind --dry-run`) can be pasted or scripted as
 * they are: words made only of safe characters stay as they are, everything else is single-quoted.
 *
 * ```ts
 * import { shellQuote } from "./shell_quote.ts";
 * console.log(["echo", "a b", "it's"].map(shellQuote).join(" ")); // echo 'a b' 'it'\''s'
 * ```
 * @module
 */

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * One word for `sh`: unchanged when it has only safe characters, otherwise in single quotes (a `'` inside becomes
 * `'\''`). The empty word is `''`.
 *
 * ```ts
 * import { shellQuote } from "./shell_quote.ts";
 * console.log(shellQuote("/sys/bus/pci/drivers_probe")); // /sys/bus/pci/drivers_probe
 * console.log(shellQuote("$(reboot)")); // '$(reboot)'
 * ```
 */
export function shellQuote(word: string): string {
  return SAFE.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
