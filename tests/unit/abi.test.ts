/**
 * Checks the kernel ABI layer (`lib/abi/`) against the kernel's own 6.12 uapi headers, and unit-tests the
 * struct-view facility.
 *
 * The ABI check turns the registry into a C program that prints every constant, every struct's `sizeof`, and
 * every field's `offsetof`, `sizeof` and C type check; it is compiled with gcc against the uapi headers and its
 * output compared value by value. Headers are found, in order: `$VFIO_TS_UAPI_INCLUDE`, `tests/vm/.cache/uapi`
 * (or `$VFIO_TS_VM_CACHE/uapi`, as setup.sh does), the last stdout line of `bash tests/vm/setup.sh --headers`.
 * Constants from kernel-internal headers (`linux/ioport.h`) are checked by copying the header's `#define` lines
 * into the program; that header is looked up in `$VFIO_TS_KERNEL_INCLUDE`, else in the same include directory.
 * Without headers or gcc the check fails.
 *
 * Run: `node_modules/deno/deno test -A tests/unit/abi.test.ts` or `node_modules/bun/bin/bun.exe test
 * tests/unit/abi.test.ts`.
 * @module
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

import { _IO, _IOC, _IOR, _IOW, _IOWR } from "../../lib/abi/ioctl.ts";
import { ABI_CONSTANTS, ABI_MODULES, ABI_STRUCTS } from "../../lib/abi/registry.ts";
import {
  bytes,
  defineStruct,
  type FieldInfo,
  i32,
  i64,
  isStructDef,
  struct,
  tail,
  u16,
  u32,
  u64,
  u8,
} from "../../lib/abi/struct.ts";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");
const ABI_DIR = join(ROOT, "lib", "abi");
const HEADERS = ["vfio.h", "iommufd.h", "pci_regs.h"];

// ---------------------------------------------------------------------------------------------------------------
// Struct facility
// ---------------------------------------------------------------------------------------------------------------

const Header = defineStruct("hdr", 8, { id: u16(0), version: u16(2), next: u32(4) });
const Sample = defineStruct("sample", 32, {
  argsz: u32(0),
  fd: i32(4),
  size: u64(8),
  delta: i64(16),
  bus: u8(24),
  pad: bytes(25, 3),
  tag: u32(28),
  data: tail(32, 1),
});
const Cap = defineStruct("cap", 16, { header: struct(Header, 0), value: u64(8) });

test("struct: u32/i32/u64/i64/u8 fields round-trip", () => {
  const s = Sample.alloc();
  assert.equal(s.bytes.length, Sample.size);
  s.argsz = 0xffffffff;
  s.fd = -1;
  s.size = (1n << 64n) - 1n;
  s.delta = -(1n << 63n);
  s.bus = 0xab;
  s.tag = 0x12345678;
  assert.equal(s.argsz, 0xffffffff);
  assert.equal(s.fd, -1);
  assert.equal(s.size, (1n << 64n) - 1n);
  assert.equal(s.delta, -(1n << 63n));
  assert.equal(s.bus, 0xab);
  assert.equal(s.tag, 0x12345678);
});

test("struct: fields are little-endian at their offsets", () => {
  const s = Sample.alloc();
  s.argsz = 0x04030201;
  s.size = 0x0807060504030201n;
  s.tag = 0xa1b2c3d4;
  assert.deepEqual([...s.bytes.subarray(0, 4)], [1, 2, 3, 4]);
  assert.deepEqual([...s.bytes.subarray(8, 16)], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...s.bytes.subarray(28, 32)], [0xd4, 0xc3, 0xb2, 0xa1]);
  assert.deepEqual([...s.bytes.subarray(4, 8)], [0, 0, 0, 0]);
});

test("struct: view at an offset shares memory with the bigger buffer", () => {
  const buf = new Uint8Array(64);
  const v = Sample.view(buf, 16);
  v.argsz = 0xdeadbeef;
  assert.deepEqual([...buf.subarray(16, 20)], [0xef, 0xbe, 0xad, 0xde]);
  buf[24] = 7;
  buf[25] = 9;
  assert.equal(v.size, 0x0907n);
  assert.equal(v.bytes.byteOffset, 16);
  assert.equal(v.bytes.length, 48);
  assert.equal(v.data.length, 16);
  v.data[0] = 0x55;
  assert.equal(buf[48], 0x55);
  v.pad[2] = 3;
  assert.equal(buf[16 + 27], 3);
  assert.equal(Sample.view(buf, 16, 32).data.length, 0);
});

test("struct: nested struct views and alloc with extra bytes", () => {
  const c = Cap.alloc(8);
  assert.equal(c.bytes.length, 24);
  c.header.id = 3;
  c.header.next = 0x40;
  c.value = 5n;
  assert.equal(Header.view(c.bytes).id, 3);
  assert.equal(c.header.next, 0x40);
  assert.deepEqual([...c.bytes.subarray(0, 8)], [3, 0, 0, 0, 0x40, 0, 0, 0]);
});

test("struct: metadata and range checks", () => {
  assert.equal(Sample.cName, "sample");
  assert.equal(Sample.size, 32);
  assert.deepEqual(Sample.fields.map((f: FieldInfo) => [f.name, f.kind, f.offset, f.width]), [
    ["argsz", "u32", 0, 4],
    ["fd", "i32", 4, 4],
    ["size", "u64", 8, 8],
    ["delta", "i64", 16, 8],
    ["bus", "u8", 24, 1],
    ["pad", "bytes", 25, 3],
    ["tag", "u32", 28, 4],
    ["data", "tail", 32, 1],
  ]);
  assert.equal(Cap.fields[0].structName, "hdr");
  assert.ok(isStructDef(Sample));
  assert.ok(!isStructDef({ ...Sample }));
  const s = Sample.alloc();
  assert.throws(() => (s.argsz = -1), RangeError);
  assert.throws(() => (s.argsz = 2 ** 32), RangeError);
  assert.throws(() => (s.fd = 2 ** 31), RangeError);
  assert.throws(() => (s.bus = 1.5), RangeError);
  assert.throws(() => (s.size = -1n), RangeError);
  assert.throws(() => Sample.view(new Uint8Array(40), 16), RangeError);
  assert.throws(() => defineStruct("bad", 4, { a: u64(0) }), RangeError);
  assert.throws(() => defineStruct("bad", 4, { bytes: u32(0) }), RangeError);
});

test("ioctl: encoders pack dir/size/type/nr and reject overflow", () => {
  assert.equal(_IO(";", 100), 0x3b64);
  assert.equal(_IO(0x3b, 100), _IO(";", 100));
  assert.equal(_IOR("x", 2, 8), 0x80087802);
  assert.equal(_IOW("x", 3, 4), 0x40047803);
  assert.equal(_IOWR("x", 4, 32), 0xc0207804);
  assert.throws(() => _IOC(4, "x", 0, 0), RangeError);
  assert.throws(() => _IOR("x", 256, 0), RangeError);
  assert.throws(() => _IOR("x", 0, 1 << 14), RangeError);
  assert.throws(() => _IO("xy", 0), RangeError);
});

// ---------------------------------------------------------------------------------------------------------------
// Registry completeness
// ---------------------------------------------------------------------------------------------------------------

test("registry: every lib/abi export is registered", async () => {
  const constants = new Map(ABI_CONSTANTS.map((c) => [c.name, c.value]));
  const structs = new Set(ABI_STRUCTS.map((s) => s.def));
  const covered = new Set(ABI_MODULES.map((m) => m.file));
  const files = readdirSync(ABI_DIR).filter((f) => f.endsWith(".ts")).sort();
  const unregistered: string[] = [];
  for (const file of files) {
    const mod: Record<string, unknown> = await import(pathToFileURL(join(ABI_DIR, file)).href);
    let data = 0;
    for (const [name, value] of Object.entries(mod)) {
      if (typeof value === "function") continue;
      if (name.startsWith("ABI_") && file === "registry.ts") continue;
      data++;
      if (typeof value === "number" && constants.get(name) === value) continue;
      if (isStructDef(value) && structs.has(value)) continue;
      unregistered.push(`${file}: ${name}`);
    }
    if (data > 0 && !covered.has(file) && file !== "mod.ts" && file !== "registry.ts") {
      unregistered.push(`${file}: not in ABI_MODULES`);
    }
  }
  assert.deepEqual(unregistered, []);
  assert.equal(new Set(ABI_STRUCTS.map((s) => s.def.cName)).size, ABI_STRUCTS.length, "duplicate C struct names");
});

// ---------------------------------------------------------------------------------------------------------------
// ABI check against the kernel's uapi headers
// ---------------------------------------------------------------------------------------------------------------

function hasHeaders(dir: string): boolean {
  return HEADERS.every((h) => existsSync(join(dir, "linux", h)));
}

/** Finds the 6.12 uapi include directory, or throws saying what was tried. */
function findUapiInclude(): string {
  const tried: string[] = [];
  const env = process.env.VFIO_TS_UAPI_INCLUDE;
  if (env) {
    if (hasHeaders(env)) return env;
    throw new Error(`VFIO_TS_UAPI_INCLUDE=${env} does not contain linux/{${HEADERS.join(",")}}`);
  }
  const cache = join(process.env.VFIO_TS_VM_CACHE || join(ROOT, "tests", "vm", ".cache"), "uapi");
  if (hasHeaders(cache)) return cache;
  tried.push(`${cache} (missing or incomplete)`);
  const setup = join(ROOT, "tests", "vm", "setup.sh");
  if (existsSync(setup)) {
    const r = spawnSync("bash", [setup, "--headers"], { cwd: ROOT, encoding: "utf8", timeout: 300_000 });
    const last = (r.stdout ?? "").trim().split("\n").pop()?.trim() ?? "";
    if (r.status === 0 && last && hasHeaders(last)) return last;
    tried.push(`bash tests/vm/setup.sh --headers (exit ${r.status}, last line "${last}"): ${(r.stderr ?? "").trim()}`);
  } else {
    tried.push(`${setup} (absent)`);
  }
  throw new Error(
    `no Linux 6.12 uapi headers found; set VFIO_TS_UAPI_INCLUDE to a directory with linux/{${HEADERS.join(",")}}.` +
      ` Tried:\n  ${tried.join("\n  ")}`,
  );
}

/** An encoder case: the TypeScript result and the C macro call that must produce the same number. */
const ENCODER_CASES: readonly { label: string; ts: number; c: string }[] = [
  { label: "_IO(';',100)", ts: _IO(";", 100), c: "_IO(';', 100)" },
  { label: "_IOR('x',2,8)", ts: _IOR("x", 2, 8), c: "_IOR('x', 2, __u8[8])" },
  { label: "_IOW('V',200,4)", ts: _IOW("V", 200, 4), c: "_IOW('V', 200, __u8[4])" },
  { label: "_IOWR(0xAF,0x46,40)", ts: _IOWR(0xaf, 0x46, 40), c: "_IOWR(0xAF, 0x46, __u8[40])" },
  { label: "_IOWR(0xff,0xff,16383)", ts: _IOWR(0xff, 0xff, 16383), c: "_IOWR(0xff, 0xff, __u8[16383])" },
];

const C_TYPE: Record<string, string> = {
  u8: "__u8",
  u16: "__u16",
  u32: "__u32",
  i32: "__s32",
  u64: "__u64",
  i64: "__s64",
};

function cString(s: string): string {
  return JSON.stringify(s);
}

/**
 * The `#define` lines of the registered constants of kernel-internal headers (which cannot be included from user
 * space), copied from the header text. A constant the header does not define is reported in `missing`.
 */
function kernelDefines(include: string): { lines: string[]; missing: string[] } {
  const lines: string[] = [];
  const missing: string[] = [];
  const dir = process.env.VFIO_TS_KERNEL_INCLUDE || include;
  for (const mod of ABI_MODULES.filter((m) => m.headerKind === "kernel")) {
    const path = join(dir, mod.header);
    const names = ABI_CONSTANTS.filter((c) => c.header === mod.header).map((c) => c.name);
    if (!existsSync(path)) {
      missing.push(`${mod.header}: kernel header not found at ${path} (set VFIO_TS_KERNEL_INCLUDE)`);
      continue;
    }
    const defs = new Map<string, string>();
    const text = readFileSync(path, "utf8").replace(/\\\n/g, " ").replace(/\/\*[\s\S]*?\*\//g, " ");
    for (const m of text.matchAll(/^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+(.*)$/gm)) defs.set(m[1], m[2].trim());
    for (const name of names) {
      const value = defs.get(name);
      if (value === undefined) missing.push(`${name}: not defined in ${path}`);
      else lines.push(`#define ${name} ${value}`);
    }
  }
  return { lines, missing };
}

/** Builds the C program; each output line is tab-separated: C name value | S struct size | F struct field ... */
function cProgram(defines: string[]): string {
  const uapi = ABI_MODULES.filter((m) => m.headerKind === "uapi").map((m) => m.header);
  const includes = [...new Set(["linux/types.h", ...uapi])];
  const lines = [
    "#include <stddef.h>",
    "#include <stdio.h>",
    ...includes.map((h) => `#include <${h}>`),
    ...defines,
    "#define M(T, m) (((T *)0)->m)",
    "int main(void) {",
  ];
  for (const c of ABI_CONSTANTS) {
    lines.push(`  printf("C\\t%s\\t%lld\\n", ${cString(c.name)}, (long long)(${c.cExpr}));`);
  }
  for (const e of ENCODER_CASES) {
    lines.push(`  printf("E\\t%s\\t%lld\\n", ${cString(e.label)}, (long long)(${e.c}));`);
  }
  for (const { def } of ABI_STRUCTS) {
    const T = `struct ${def.cName}`;
    lines.push(`  printf("S\\t%s\\t%zu\\n", ${cString(def.cName)}, sizeof(${T}));`);
    for (const f of def.fields) {
      const m = `M(${T}, ${f.name})`;
      let width: string;
      let typeOk: string;
      switch (f.kind) {
        case "tail":
          width = `sizeof(${m}[0])`;
          typeOk = `__builtin_types_compatible_p(__typeof__(${m}), __typeof__(${m}[0])[])`;
          break;
        case "bytes":
          width = `sizeof(${m})`;
          typeOk = `__builtin_types_compatible_p(__typeof__(${m}), __u8[${f.width}])`;
          break;
        case "struct":
          width = `sizeof(${m})`;
          typeOk = `__builtin_types_compatible_p(__typeof__(${m}), struct ${f.structName})`;
          break;
        default:
          width = `sizeof(${m})`;
          typeOk = `__builtin_types_compatible_p(__typeof__(${m}), ${C_TYPE[f.kind]})`;
      }
      lines.push(
        `  printf("F\\t%s\\t%s\\t%zu\\t%zu\\t%d\\n", ${cString(def.cName)}, ${cString(f.name)}, ` +
          `offsetof(${T}, ${f.name}), ${width}, ${typeOk});`,
      );
    }
  }
  lines.push("  return 0;", "}", "");
  return lines.join("\n");
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

test(
  "ABI: constants, struct sizes and field layouts match the kernel's 6.12 uapi headers",
  { timeout: 600_000 },
  () => {
    const include = findUapiInclude();
    const work = mkdtempSync(join(tmpdir(), "vfio-ts-abi-"));
    try {
      const src = join(work, "abi.c");
      const bin = join(work, "abi");
      const kernel = kernelDefines(include);
      assert.deepEqual(kernel.missing, [], "constants of kernel-internal headers not found");
      writeFileSync(src, cProgram(kernel.lines));
      run("gcc", ["-std=gnu11", "-Wall", "-Werror", "-I", include, "-o", bin, src]);
      const got = new Map<string, string[]>();
      for (const line of run(bin, []).split("\n")) {
        if (!line) continue;
        const [tag, ...rest] = line.split("\t");
        const key = tag === "F" ? `F ${rest[0]}.${rest[1]}` : `${tag} ${rest[0]}`;
        got.set(key, tag === "F" ? rest.slice(2) : rest.slice(1));
      }

      const mismatches: string[] = [];
      const expect = (key: string, actual: string[] | undefined, wanted: string[]): void => {
        if (actual === undefined) mismatches.push(`${key}: not printed by the C program`);
        else if (actual.join(" ") !== wanted.join(" ")) {
          mismatches.push(`${key}: C says ${actual.join(" ")}, TypeScript says ${wanted.join(" ")}`);
        }
      };
      for (const c of ABI_CONSTANTS) expect(`C ${c.name}`, got.get(`C ${c.name}`), [String(c.value)]);
      for (const e of ENCODER_CASES) expect(`E ${e.label}`, got.get(`E ${e.label}`), [String(e.ts)]);
      let fields = 0;
      for (const { def } of ABI_STRUCTS) {
        expect(`S ${def.cName}`, got.get(`S ${def.cName}`), [String(def.size)]);
        for (const f of def.fields) {
          fields++;
          const key = `F ${def.cName}.${f.name}`;
          expect(`${key} (offset width type-ok)`, got.get(key), [String(f.offset), String(f.width), "1"]);
        }
      }
      assert.deepEqual(mismatches, [], `ABI mismatches against ${include}`);
      console.log(
        `ABI: checked ${ABI_CONSTANTS.length} constants, ${ABI_STRUCTS.length} structs, ${fields} fields` +
          ` and ${ENCODER_CASES.length} encoder cases against ${include}`,
      );
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
);
