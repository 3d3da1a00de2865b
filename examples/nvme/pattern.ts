/**
 * The test pattern the rig's NVMe images hold (their first MiB, seed 0): each 32-bit little-endian word is the low
 * 32 bits of its byte offset in the namespace, XOR a seed. Writing it and finding it again proves data went to the
 * right blocks.
 *
 * ```ts
 * import { fillPattern, findMismatch } from "./pattern.ts";
 * const words = new Uint32Array(128);
 * fillPattern(words, 512, 0x5eed);
 * findMismatch(words, 512, 0x5eed); // -1
 * ```
 * @module
 */

/** The pattern's word at byte `at` of the namespace. */
export function patternWord(at: number, seed: number): number {
  return ((at ^ seed) >>> 0);
}

/** Fills `words` with the pattern of the bytes from `firstByte` on. */
export function fillPattern(words: Uint32Array, firstByte: number, seed: number): void {
  for (let i = 0; i < words.length; i++) words[i] = patternWord(firstByte + 4 * i, seed);
}

/** The index of the first word that differs from the pattern, or -1. */
export function findMismatch(words: Uint32Array, firstByte: number, seed: number): number {
  for (let i = 0; i < words.length; i++) if (words[i] !== patternWord(firstByte + 4 * i, seed)) return i;
  return -1;
}
