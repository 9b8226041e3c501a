#!/usr/bin/env bash
# Where a shader's time goes on lavapipe: samples the JIT code of a running convscope with
# perf and prints the hottest code regions disassembled, each instruction with its share of
# the samples.
#
# usage: tools/lavapipe_profile.sh BIN ARGS...   e.g.
#   tools/lavapipe_profile.sh target/release/convscope bench --shape 64,64,3,56x56,1,1 --block 12x4s --runs 3000
# Needs perf and gdb. The command must run for ~10 s (many --runs): it is sampled for 3 s
# after WARM seconds (default 6), then its JIT code is read with gdb and it is stopped.
# Writes OUT (default /tmp/lavapipe-profile)/region-N.txt, N = 1 the hottest region. A
# region with vmulps/vaddps is a conv's arithmetic; a `bench` run also reduces the
# output's statistics (the minmax pass), which is another region.
set -eu
BIN=$1; shift
OUT=${OUT:-/tmp/lavapipe-profile}
mkdir -p "$OUT"; rm -f "$OUT"/region-*.txt
"$BIN" "$@" >/dev/null 2>&1 &
PID=$!
sleep "${WARM:-6}"
perf record -o "$OUT/perf.data" -p "$PID" -- sleep 3 >/dev/null 2>&1
perf report -i "$OUT/perf.data" --stdio 2>/dev/null | grep JIT | awk '{print $1, $NF}' > "$OUT/hot.txt"
# Regions: hot addresses less than 128 KiB apart, the three with the most samples.
python3 - "$OUT" <<'P' > "$OUT/regions.txt"
import sys
out = sys.argv[1]
hs = sorted((int(l.split()[1], 16), float(l.split()[0].rstrip('%'))) for l in open(f"{out}/hot.txt"))
regions, cur = [], []
for a, p in hs:
    if cur and a - cur[-1][0] > 0x20000:
        regions.append(cur); cur = []
    cur.append((a, p))
if cur: regions.append(cur)
for r in sorted(regions, key=lambda r: -sum(p for _, p in r))[:3]:
    print(f"{r[0][0]:#x} {r[-1][0] + 0x80:#x} {sum(p for _, p in r):.1f}")
P
n=0
while read -r a b p; do
    n=$((n + 1))
    timeout 120 gdb -p "$PID" -batch -ex "disassemble $a,$b" </dev/null 2>/dev/null | grep "^ *0x" > "$OUT/dis-$n.txt" || true
done < "$OUT/regions.txt"
kill "$PID" 2>/dev/null || true
python3 - "$OUT" <<'P'
import glob, sys
out = sys.argv[1]
hot = {int(a, 16): float(p.rstrip('%')) for p, a in (l.split() for l in open(f"{out}/hot.txt"))}
for f in sorted(glob.glob(f"{out}/dis-*.txt")):
    rows = []
    for l in open(f):
        a = int(l.split()[0].rstrip(':'), 16)
        if 'add    %al,(%rax)' not in l:
            rows.append(f"{hot.get(a, 0):5.2f} {l.rstrip()}")
    g = f.replace('dis-', 'region-')
    open(g, 'w').write("\n".join(rows) + "\n")
    muls = sum('vmulps' in r for r in rows)
    print(f"{g}: {sum(float(r.split()[0]) for r in rows):.1f}% of samples, {len(rows)} instructions, {muls} vmulps")
P
