# P3's ring, run in the guest by bench/all.ts (after bench/c/irq_guest.c is built as /tmp/irq_guest): the C waiter,
# Deno's and Bun's `bench/irq_guest.ts` in ring mode, one edu device each, run `waitSync()`-design blocks in turn
# (C, Deno, Bun, C, ...), handing a token on through FIFOs; C runs one block more, so every runtime block lies
# between two C blocks. The guest's speed drifts within a fraction of a second (C's own block p50 moves 2-3x between
# neighbouring blocks), which only such close pairing cancels. Prints the three programs' RESULT lines.
# Usage: sh bench/irq_ring.sh <rounds per block> <blocks> <rotation: which edu C takes, 0-2; Deno and Bun the next>
# [traced: the runtimes run waitSync()'s traced form, for its kernel / return breakdown]
set -eu
rounds=$1 blocks=$2 rot=$3 traced=${4:-}
edu() { echo "$VFIO_TS_EDU" | cut -d, -f$(((rot + $1) % 3 + 1)); }
[ -n "$(edu 2)" ] || { echo "irq_ring.sh: needs three edu devices (VFIO_TS_EDU: $VFIO_TS_EDU)" >&2; exit 2; }
dir=$(mktemp -d)
mkfifo "$dir/c" "$dir/deno" "$dir/bun"
timeout 900 /tmp/irq_guest "$(edu 0)" "$rounds" 1000 ring "$dir/c" "$dir/deno" "$blocks" >"$dir/c.out" &
timeout 900 $VFIO_TS_DENO run -A bench/irq_guest.ts "$rounds" 1000 ring $(((rot + 1) % 3)) "$dir/deno" "$dir/bun" \
  "$blocks" $traced >"$dir/deno.out" &
timeout 900 $VFIO_TS_BUN bench/irq_guest.ts "$rounds" 1000 ring $(((rot + 2) % 3)) "$dir/bun" "$dir/c" "$blocks" \
  $traced >"$dir/bun.out" &
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
