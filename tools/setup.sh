#!/bin/bash
# Installs everything vfio-ts needs on a fresh Debian 12 machine (as root), from Debian's archive and the npm
# registry, and says what it does; on a failure it names the step and why, and exits non-zero.
#  - Debian: the C toolchain the ABI test and the busy-poll helper build with (gcc, libc6-dev, make, binutils),
#    pci.ids (device names for the vfio CLI), the programs the tests run inside the guest (the guest chroots into
#    this machine's root, so it has only what is installed here: ip, setpriv, python3, modprobe, dd, …), and
#    Node.js with npm when there is no npm (Debian's nodejs and npm packages).
#  - npm: Deno, Bun and dprint, pinned in package.json and package-lock.json, into node_modules/.
# The QEMU guest rig installs its own host packages (tests/vm/setup.sh). Idempotent and quick the second time.
set -eEuo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
STEP="start"
trap 'rc=$?; if [[ $BASHPID == "$$" ]]; then
  echo "setup: FAILED at step \"$STEP\": \"$BASH_COMMAND\" exited $rc" >&2
  exit $rc
fi' ERR
fail() {
  echo "setup: FAILED at step \"$STEP\": $*" >&2
  exit 1
}
step() {
  STEP=$1
  echo "setup: $1"
}

# Debian packages, by what needs them:
# the ABI test, benchmarks, and the poll helper's reproducible-build check on both architectures (readelf, cross gcc)
BUILD=(gcc libc6-dev make binutils gcc-aarch64-linux-gnu)
# device names for the vfio CLI (the guest reads this machine's /usr/share/misc)
DATA=(pci.ids)
# run by tests inside the guest: ip, setpriv/mkswap/swapon/runuser, python3, modprobe, dd, nvme (virt-mgmt); fio
# (bench/nvme_qd.ts)
GUEST=(iproute2 util-linux python3 kmod coreutils nvme-cli fio)
pkgs=("${BUILD[@]}" "${DATA[@]}" "${GUEST[@]}")
command -v npm >/dev/null || pkgs+=(nodejs npm)
step "Debian packages (${pkgs[*]})"
bash tools/apt-install.sh --as setup "${pkgs[@]}" || fail "installing Debian packages (apt's messages above)"

if [[ ! -x node_modules/deno/deno || ! -x node_modules/bun/bin/bun.exe || ! -x node_modules/.bin/dprint ]]; then
  # HTTPS to the registry may go through a proxy whose CA only the system trust store has: npm (Node.js) trusts
  # what NODE_EXTRA_CA_CERTS names, so point it at the system store unless the machine already says otherwise
  if [[ -z ${NODE_EXTRA_CA_CERTS:-} && -f /etc/ssl/certs/ca-certificates.crt ]]; then
    export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
  fi
  step "npm install: deno, bun, dprint (node $(node --version), npm $(npm --version))"
  # npm install, not npm ci: dprint lists optional per-platform packages that the registry lacks, which npm ci
  # reports as a lock file out of sync; the versions stay pinned by package.json and package-lock.json.
  log=$(mktemp)
  if ! npm install --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
    cat "$log" >&2
    if grep -qE 'SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT|unable to verify' "$log"; then
      echo "setup: npm does not trust the registry's certificate: add the CA of your network's HTTPS proxy to" \
        "/etc/ssl/certs/ca-certificates.crt (or set NODE_EXTRA_CA_CERTS to a file with it)" >&2
    fi
    rm -f "$log"
    fail "npm install exited non-zero (npm's messages above)"
  fi
  rm -f "$log"
fi
step "checking the installed runtimes"
for bin in node_modules/deno/deno node_modules/bun/bin/bun.exe node_modules/.bin/dprint; do
  [[ -x $bin ]] || fail "npm install finished but $bin is missing (an install script of the package failed?)"
done
echo "setup: ready: deno $(node_modules/deno/deno --version | head -1 | cut -d' ' -f2)," \
  "bun $(node_modules/bun/bin/bun.exe --version), dprint $(node_modules/.bin/dprint --version | cut -d' ' -f2)"
