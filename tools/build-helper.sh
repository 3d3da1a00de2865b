#!/bin/bash
# Builds the busy-poll helper (ffi/poll_helper.c) for x86_64 and aarch64 and embeds both objects in
# ffi/poll_helper_blob.ts (the library loads them from there through a memfd: no .so file ships), with flags chosen
# so that the same compiler gives the same bytes: no libc (-nostdlib), no build id, no debug info, stripped, paths
# mapped away. Installs Debian's gcc-aarch64-linux-gnu cross compiler when missing (root).
#   bash tools/build-helper.sh                 # rebuild the embedded objects (deno task build:helper)
#   bash tools/build-helper.sh --out DIR [ARCH...] # only build DIR/linux-<arch>/libvfio_ts_poll.so (the unit test)
#   bash tools/build-helper.sh --flags         # print the compiler flags
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
FLAGS=(-std=c11 -O2 -ffreestanding -fPIC -shared -nostdlib -fvisibility=hidden -Wall -Wextra -Werror
  -ffile-prefix-map="$PWD"=. -Wl,--build-id=none -Wl,-soname,libvfio_ts_poll.so -Wl,-z,noexecstack -s)
install=1
if [[ ${1:-} == --flags ]]; then echo "${FLAGS[*]}"; exit 0; fi
if [[ ${1:-} == --out ]]; then out=$2; install=0; shift 2; else
  out=$(mktemp -d /tmp/vfio-ts-helper-XXXXXX)
  trap 'rm -rf "$out"' EXIT
fi
arches=("$@")
((${#arches[@]})) || arches=(x86_64 aarch64)
if ((install && ${#arches[@]} != 2)); then echo "build-helper: the embedded blob needs both architectures" >&2; exit 2; fi
for arch in "${arches[@]}"; do
  case $arch in
    x86_64) cc=x86_64-linux-gnu-gcc pkg=gcc ;;
    aarch64) cc=aarch64-linux-gnu-gcc pkg=gcc-aarch64-linux-gnu ;;
    *) echo "build-helper: unknown architecture $arch (x86_64, aarch64)" >&2; exit 2 ;;
  esac
  if ! command -v "$cc" >/dev/null; then
    if ((install)) && [[ $(id -u) == 0 ]]; then
      echo "build-helper: apt-get install $pkg"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; }
    else
      echo "build-helper: $cc not found (apt-get install $pkg)" >&2; exit 3
    fi
  fi
  mkdir -p "$out/linux-$arch"
  "$cc" "${FLAGS[@]}" -o "$out/linux-$arch/libvfio_ts_poll.so" ffi/poll_helper.c
  echo "build-helper: $out/linux-$arch/libvfio_ts_poll.so ($("$cc" -dumpfullversion), $(stat -c %s "$out/linux-$arch/libvfio_ts_poll.so") bytes)"
done
if ((install)); then
  deno=node_modules/deno/deno
  [[ -x $deno ]] || deno=$(command -v deno) || { echo "build-helper: deno not found (run tools/setup.sh)" >&2; exit 3; }
  "$deno" run --allow-read="$out" --allow-write=ffi/poll_helper_blob.ts tools/helper-blob.ts "$out"
fi
