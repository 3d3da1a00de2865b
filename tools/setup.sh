#!/bin/bash
# Installs everything vfio-ts needs on a fresh Debian 12 machine (as root): the C toolchain the ABI test and the
# busy-poll helper build with, pci.ids (device names for the vfio CLI; the guest sees the host's /usr/share/misc),
# and Deno, Bun and dprint from the npm registry (pinned in package-lock.json).
# The QEMU guest rig installs its own packages (tests/vm/setup.sh). Idempotent and quick the second time.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
need=()
for p in gcc libc6-dev make pci.ids; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
  echo "setup: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ ! -x node_modules/deno/deno || ! -x node_modules/bun/bin/bun.exe || ! -x node_modules/.bin/dprint ]]; then
  # npm install, not npm ci: dprint lists optional per-platform packages that the registry lacks, which npm ci
  # reports as a lock file out of sync; the versions stay pinned by package.json and package-lock.json.
  echo "setup: npm install (deno, bun, dprint)"
  npm install --no-audit --no-fund --loglevel=error
fi
echo "setup: deno $(node_modules/deno/deno --version | head -1 | cut -d' ' -f2), bun $(node_modules/bun/bin/bun.exe --version)"
