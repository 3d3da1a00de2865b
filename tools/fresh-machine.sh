#!/bin/bash
# Runs the README's two commands on a fresh Debian 12, as a new user would: a `debootstrap --variant=minbase
# bookworm` root with only git and ca-certificates added, the current commit cloned into /root/vfio-ts (root's home,
# mode 700), the machine's apt sources, trust store and NODE_EXTRA_CA_CERTS copied in (what any machine on this
# network has), and the commands taken from README.md's first fenced code block at run time, run one after the other
# in a chroot with /proc, /sys, /dev, /dev/pts and /dev/shm mounted. Prints each command's exit status and duration;
# exits non-zero when one fails. Slow (the second command is the whole suite): run it before calling a change to
# the set-up done, not on every CI run. Needs root.
#
#   bash tools/fresh-machine.sh                  both commands on a new copy of the cached minbase root
#   bash tools/fresh-machine.sh --only 1         only the first command (set-up and the example, a few minutes)
#   --keep            leave the root (and its mounts' mount points) in place afterwards, for a look inside
#   --reuse           run in the root left by --keep instead of a fresh copy (e.g. --only 2 after --only 1 --keep)
#   --rebuild-root    debootstrap the cached minbase root again
#   --prepare         only build the cached minbase root
#   --dir DIR         where the cached root and the run's root live (default $VFIO_TS_FRESH_DIR or
#                     /var/cache/vfio-ts-fresh-machine; outside the repository)
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
DIR=${VFIO_TS_FRESH_DIR:-/var/cache/vfio-ts-fresh-machine}
ONLY="" KEEP=0 REUSE=0 REBUILD=0 PREPARE=0
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --only) ONLY=${2:-}; shift ;;
    --keep) KEEP=1 ;;
    --reuse) REUSE=1 ;;
    --rebuild-root) REBUILD=1 ;;
    --prepare) PREPARE=1 ;;
    --dir) DIR=${2:-}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fresh-machine: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -z $ONLY || $ONLY == 1 || $ONLY == 2 ]] || { echo "fresh-machine: --only takes 1 or 2" >&2; exit 2; }
[[ -n $DIR ]] || { echo "fresh-machine: --dir needs a directory" >&2; exit 2; }

T0=$(date +%s)
say() { echo "fresh-machine [$(($(date +%s) - T0)) s]: $*"; }
STEP="starting"
on_error() { echo "fresh-machine: FAILED at step \"$STEP\" (exit $1, line $2)" >&2; }
trap 'on_error $? $LINENO' ERR
step() { STEP=$*; say "$*"; }

[[ $(id -u) == 0 ]] || { echo "fresh-machine: must run as root (debootstrap, chroot, mounts)" >&2; exit 1; }
mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock -n 9 || { echo "fresh-machine: another run holds $DIR/.lock" >&2; exit 1; }
BASE=$DIR/base
ROOT=$DIR/root
HOME_IN=/root/vfio-ts # where the clone sits inside the root
LOG=$DIR/last-run.log

# --- mounts of the run's root: listed innermost first for the cleanup ---
mounted() { awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts | sort -r; }
cleanup() {
  local rc=$? pid root
  trap - EXIT INT TERM ERR
  # processes left running inside the root (a QEMU guest of an interrupted test run): started by this script
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    root=$(readlink "/proc/$pid/root" 2>/dev/null) || continue
    [[ $root == "$ROOT" ]] && kill "$pid" 2>/dev/null && echo "fresh-machine: stopped process $pid left in the root"
  done
  local m
  for m in $(mounted); do umount "$m" 2>/dev/null || umount -l "$m" || echo "fresh-machine: cannot unmount $m" >&2; done
  if ((KEEP == 0)) && [[ -d $ROOT ]] && [[ -z $(mounted) ]]; then rm -rf "$ROOT"; fi
  ((KEEP == 0)) || echo "fresh-machine: root kept at $ROOT (remove it with: rm -rf $ROOT)"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "fresh-machine: interrupted" >&2; exit 130' INT TERM

# --- the cached minbase root ---
if ! command -v debootstrap >/dev/null; then
  step "apt-get install debootstrap (on this machine)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi
# the mirror this machine's apt uses for bookworm (deb822 sources or one-line sources.list)
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
  /^URIs:/ {u = $2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == "bookworm") {print u; exit}}')
[[ -n $mirror ]] || mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
  awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}')
mirror=${mirror:-http://deb.debian.org/debian}
if ((REBUILD)) || [[ ! -f $BASE/.vfio-ts-base ]]; then
  step "debootstrap --variant=minbase --include=git,ca-certificates bookworm from $mirror (a few minutes)"
  rm -rf "$BASE.tmp" "$BASE"
  debootstrap --variant=minbase --include=git,ca-certificates bookworm "$BASE.tmp" "$mirror" >"$DIR/debootstrap.log" 2>&1 ||
    { tail -20 "$DIR/debootstrap.log" >&2; echo "fresh-machine: debootstrap failed (log: $DIR/debootstrap.log)" >&2; exit 1; }
  rm -rf "$BASE.tmp/var/cache/apt/archives/"*.deb
  date -u +%FT%TZ >"$BASE.tmp/.vfio-ts-base"
  mv "$BASE.tmp" "$BASE"
fi
say "minbase root: $BASE (built $(cat "$BASE/.vfio-ts-base"))"
((PREPARE == 0)) || exit 0

# --- this run's root: a copy of the cached one ---
[[ -z $(mounted) ]] || { echo "fresh-machine: $ROOT still has mounts (another run?): $(mounted | tr '\n' ' ')" >&2; exit 1; }
if ((REUSE)); then
  [[ -d $ROOT$HOME_IN ]] || { echo "fresh-machine: --reuse: no root left at $ROOT (run with --keep first)" >&2; exit 1; }
  step "reusing the root at $ROOT"
else
  step "copying the minbase root to $ROOT"
  rm -rf "$ROOT"
  cp -a "$BASE" "$ROOT"
  rm -f "$ROOT/.vfio-ts-base"

  step "network settings of this machine: apt sources, resolver, trust store, NODE_EXTRA_CA_CERTS"
  rm -f "$ROOT/etc/apt/sources.list" "$ROOT"/etc/apt/sources.list.d/*
  [[ ! -f /etc/apt/sources.list ]] || cp /etc/apt/sources.list "$ROOT/etc/apt/"
  # (not the sources the project's own scripts added here: a fresh machine must get them from those scripts)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ ! -f $f || $(basename "$f") == vfio-ts-* ]] || cp "$f" "$ROOT/etc/apt/sources.list.d/"
  done
  # apt options this network's mirror needs (e.g. a snapshot whose Release files are past Valid-Until)
  for f in /etc/apt/apt.conf.d/*; do
    if grep -qE 'Acquire::(Check-Valid-Until|Check-Date|Proxy|https?::Proxy)' "$f" 2>/dev/null; then
      cp "$f" "$ROOT/etc/apt/apt.conf.d/"
    fi
  done
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
  # the trust store: certificates this machine trusts beyond Debian's set (this network's HTTPS proxy) go where a
  # local administrator puts them, so that update-ca-certificates keeps them; and the bundle itself
  csplit_dir=$(mktemp -d)
  awk -v d="$csplit_dir" '/BEGIN CERT/ {n++; f = sprintf("%s/%04d.crt", d, n)} f {print > f} /END CERT/ {close(f); f = ""}' \
    /etc/ssl/certs/ca-certificates.crt
  extra=0
  for c in "$csplit_dir"/*.crt; do
    if ! grep -qF "$(sed -n 2p "$c")" "$ROOT/etc/ssl/certs/ca-certificates.crt"; then
      extra=$((extra + 1))
      cp "$c" "$ROOT/usr/local/share/ca-certificates/this-network-$extra.crt"
    fi
  done
  rm -rf "$csplit_dir"
  chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 || true
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
  say "trust store: $extra certificate(s) of this machine added to Debian's"
  if [[ -n ${NODE_EXTRA_CA_CERTS:-} && -f $NODE_EXTRA_CA_CERTS ]]; then
    [[ -f $ROOT$NODE_EXTRA_CA_CERTS ]] || { mkdir -p "$(dirname "$ROOT$NODE_EXTRA_CA_CERTS")"; cp "$NODE_EXTRA_CA_CERTS" "$ROOT$NODE_EXTRA_CA_CERTS"; }
    echo "NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS" >>"$ROOT/etc/environment"
  fi

  commit=$(git -C "$REPO" rev-parse HEAD)
  step "git clone of $commit into $HOME_IN"
  [[ -z $(git -C "$REPO" status --porcelain --untracked-files=no) ]] ||
    say "note: $REPO has uncommitted changes; the clone has only the commit"
  git clone -q --no-checkout "$REPO" "$ROOT$HOME_IN"
  git -C "$ROOT$HOME_IN" checkout -q --detach "$commit"
  chmod 700 "$ROOT/root"
fi

# --- the README's commands: the first fenced code block, trailing comments stripped ---
step "reading the commands from README.md's first code block"
mapfile -t CMDS < <(awk '/^```/ {if (inb) exit; inb = 1; next} inb' "$ROOT$HOME_IN/README.md" |
  sed -E 's/[[:space:]]+#.*$//; s/[[:space:]]+$//' | grep -v '^$')
((${#CMDS[@]} >= 2)) || { echo "fresh-machine: README.md's first code block has ${#CMDS[@]} command(s), expected 2" >&2; exit 1; }
for i in "${!CMDS[@]}"; do say "README command $((i + 1)): ${CMDS[$i]}"; done

# --- mounts ---
step "mounting /proc, /sys, /dev, /dev/pts, /dev/shm in the root"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
mount -t tmpfs -o mode=1777 shm "$ROOT/dev/shm"

# --- run ---
: >"$LOG"
results=() rc_all=0
for i in "${!CMDS[@]}"; do
  n=$((i + 1))
  [[ -z $ONLY || $ONLY == "$n" ]] || continue
  cmd=${CMDS[$i]}
  step "command $n in the root: $cmd"
  t=$(date +%s)
  # in the background and waited for, so that a signal reaches the trap (and the cleanup) at once
  (
    set +e
    chroot "$ROOT" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      ${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS} \
      /bin/bash -lc "cd $HOME_IN && $cmd" </dev/null 2>&1 | tee -a "$LOG"
    exit "${PIPESTATUS[0]}"
  ) &
  rc=0
  wait $! || rc=$?
  line="command $n: exit $rc after $(($(date +%s) - t)) s: $cmd"
  results+=("$line")
  say "$line"
  if ((rc != 0)); then rc_all=1; break; fi
done
echo "fresh-machine: summary (log: $LOG)"
for r in "${results[@]}"; do echo "  $r"; done
STEP="done"
exit $rc_all
