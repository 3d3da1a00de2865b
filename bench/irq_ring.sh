# P3's ring, run in the guest by bench/all.ts (after bench/c/irq_guest.c is built as /tmp/irq_guest): the C waiter,
# Deno's and Bun's `bench/irq_guest.ts` in ring mode, one edu device each, run `waitSync()`-design blocks in turn
# (C, Deno, Bun, C, ... or C, Bun, Deno, C, ...), handing a token on through FIFOs; C runs one block more, so every
# runtime block lies between two C blocks. The guest's speed drifts between runs seconds apart (C's own p50 moved
# 2-3x between the passes of one boot), which close pairing cancels. Prints the three programs' RESULT lines.
# Usage: sh bench/irq_ring.sh <rounds per block> <blocks> <rotation: which edu C takes, 0-2; the runtimes the next>
#   [order: "deno-first" (default) or "bun-first": which runtime follows C] [traced: the runtimes run waitSync()'s
#   traced form, for its kernel / return breakdown]
set -eu
rounds=$1 blocks=$2 rot=$3 order=${4:-deno-first} traced=${5:-}
edu() { echo "$VFIO_TS_EDU" | cut -d, -f$(((rot + $1) % 3 + 1)); }
[ -n "$(edu 2)" ] || { echo "irq_ring.sh: needs three edu devices (VFIO_TS_EDU: $VFIO_TS_EDU)" >&2; exit 2; }
case $order in
deno-first) first=deno second=bun ;;
bun-first) first=bun second=deno ;;
*) echo "irq_ring.sh: order is deno-first or bun-first, not $order" >&2 && exit 2 ;;
esac
dir=$(mktemp -d)
mkfifo "$dir/c" "$dir/deno" "$dir/bun"
# <program> <edu index> <in fifo> <out fifo> <blocks>
runtime() {
  case $1 in
  deno) set -- "$VFIO_TS_DENO run -A" "$2" "$3" "$4" "$5" ;;
  bun) set -- "$VFIO_TS_BUN" "$2" "$3" "$4" "$5" ;;
  esac
  timeout 900 $1 bench/irq_guest.ts "$rounds" 1000 ring "$(((rot + $2) % 3))" "$3" "$4" "$5" $traced
}
timeout 900 /tmp/irq_guest "$(edu 0)" "$rounds" 1000 ring "$dir/c" "$dir/$first" "$blocks" >"$dir/c.out" &
runtime "$first" 1 "$dir/$first" "$dir/$second" "$blocks" >"$dir/$first.out" &
runtime "$second" 2 "$dir/$second" "$dir/c" "$blocks" >"$dir/$second.out" &
# every program set up and asleep on its FIFO before the token goes in (a starting runtime would be runnable)
for i in $(seq 600); do
  [ -e "$dir/c.ready" ] && [ -e "$dir/deno.ready" ] && [ -e "$dir/bun.ready" ] && break
  sleep 0.2
done
sleep 1
printf x >"$dir/c"
wait
cat "$dir/c.out" "$dir/deno.out" "$dir/bun.out"
rm -r "$dir"
