#!/usr/bin/env bash
# CPU cost of the produce path: starts a fresh `raftmq dev`, warms the route up with 200
# sends, then runs `raftmq bench produce` (1 KiB, one client instance, K in flight) for SECS
# seconds while `perf stat -e instructions` watches the dev process, and wraps the bench
# client in `perf stat` too. Prints msgs/s, p50/p99 and instructions per acknowledged message
# for the broker process and for the client. With `record` as the fifth argument it runs
# `perf record --call-graph dwarf` on the dev process instead (perf.data in OUT).
#
#   scripts/perf-produce.sh RAFTMQ_BINARY sync|async K SECS [record]
#
# Compare two builds by running them alternately; on a shared machine msgs/s moves with the
# load, instructions per message much less. Environment: OUT (scratch and result files,
# default /tmp/raftmq-perf), NS_PORT (19886), BROKER_PORT (12921), SERIALIZE (the bench
# client's header encoding, json (default) or rocketmq).
set -u
bin=${1:?usage: perf-produce.sh RAFTMQ_BINARY sync|async K SECS [record]}
flush=${2:?}; k=${3:?}; secs=${4:?}; rec=${5:-}
out=${OUT:-/tmp/raftmq-perf}
port=${NS_PORT:-19886}
broker_port=${BROKER_PORT:-12921}
mkdir -p "$out"
data=$out/data
rm -rf "$data"
"$bin" dev --flush "$flush" -p "$port" --broker-port "$broker_port" --data "$data" > "$out/dev.out" 2> "$out/dev.log" &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 300); do grep -qs "raftmq dev: ready" "$out/dev.out" && break; sleep 0.1; done
"$bin" bench produce -n 127.0.0.1:$port -t BenchTopic --size 1024 --threads 1 --inflight 1 \
  --messages 200 --duration 5s -q --json > /dev/null 2>&1
rm -f "$out/stat.txt" "$out/cstat.txt"
if [ "$rec" = record ]; then
  perf record -F 999 -g --call-graph dwarf,16384 -o "$out/perf.data" -p $dev -- sleep "$secs" > /dev/null 2>&1 &
else
  perf stat -e instructions,task-clock -x, -o "$out/stat.txt" -p $dev -- sleep "$secs" &
fi
watcher=$!
perf stat -e instructions,task-clock -x, -o "$out/cstat.txt" \
  "$bin" bench produce -n 127.0.0.1:$port -t BenchTopic --size 1024 --threads 1 --inflight "$k" \
  --duration "${secs}s" --serialize-type "${SERIALIZE:-json}" --json -q > "$out/res.json" 2> /dev/null
wait $watcher
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
r = json.load(open(os.path.join(out, "res.json")))
def stat(name):
    d = {}
    try:
        for line in open(os.path.join(out, name)):
            p = line.strip().split(",")
            if len(p) > 3 and p[0] and p[0][0].isdigit():
                d[p[2]] = float(p[0])
    except OSError:
        pass
    return d
s, c, n = stat("stat.txt"), stat("cstat.txt"), r["messages"]
line = (f"msgs={n} msgs/s={r['msgs_per_s']:.0f} p50={r['latency']['p50_us']/1000:.2f}ms "
        f"p99={r['latency']['p99_us']/1000:.2f}ms err={r['errors']}")
if s.get("instructions"):
    line += f" | broker insn/msg={s['instructions']/n:.0f}"
if c.get("instructions"):
    line += f" | client insn/msg={c['instructions']/n:.0f}"
print(line)
PY
