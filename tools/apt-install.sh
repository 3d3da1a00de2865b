#!/bin/bash
# Installs those of the named Debian packages that are not installed yet (needs root when one is missing), reading
# the package lists first when they do not know a package. Says what it installs; on failure prints apt's own
# messages and which packages it was installing, and exits 1. Used by tools/setup.sh and tests/vm/setup.sh.
#   bash tools/apt-install.sh [--as NAME] PKG...     (NAME prefixes its messages; default apt-install)
set -uo pipefail
name=apt-install
if [[ ${1:-} == --as ]]; then name=$2; shift 2; fi
missing=()
for p in "$@"; do
  # dpkg-query exits 1 for a package it has never seen: that means "not installed", not an error
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) || status=""
  [[ $status == installed ]] || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) != 0 ]]; then
  echo "$name: Debian packages missing: ${missing[*]}; run this as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
update() {
  echo "$name: apt-get update"
  if ! apt-get update -qq >"$log" 2>&1; then
    tail -20 "$log" >&2
    echo "$name: apt-get update failed (network, or /etc/apt/sources.list*: apt's messages above)" >&2
    exit 1
  fi
}
unknown=()
for p in "${missing[@]}"; do
  candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
  [[ -n $candidate && $candidate != "(none)" ]] || unknown+=("$p")
done
updated=0
if ((${#unknown[@]})); then
  update
  updated=1
fi
install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; }
echo "$name: apt-get install ${missing[*]}"
if ! install; then
  # stale lists point at files the mirror no longer has: read them again once
  if ((updated)) || ! update || ! install; then
    tail -30 "$log" >&2
    echo "$name: apt-get install ${missing[*]} failed (apt's messages above)" >&2
    exit 1
  fi
fi
