#!/usr/bin/env bash
# Runs `raftmq bench` against a fresh `raftmq dev` (nameserver + 3-node group in one process)
# with the given flush mode: produce with 1, 64 and 256 sends in flight, then fill a backlog
# and drain it with `bench consume`, sampling the dev process's memory throughout.
#
#   scripts/bench-dev.sh sync|async [OUT_DIR]
#
# Environment: RAFTMQ (binary, default target/release/raftmq), DATA (data directory, removed
# first and afterwards; default /tmp/raftmq-bench-dev), SECS (seconds per produce run,
# default 10), BACKLOG (messages in the drained backlog, default 1000000), NS_PORT (9876), BROKER_PORT
# (10911; the group uses it, +10, +20 and those +30000).
set -euo pipefail
flush=${1:?usage: bench-dev.sh sync|async [OUT_DIR]}
out=${2:-bench-out}
bin=${RAFTMQ:-target/release/raftmq}
data=${DATA:-/tmp/raftmq-bench-dev}
secs=${SECS:-10}
backlog=${BACKLOG:-1000000}
port=${NS_PORT:-9876}
broker_port=${BROKER_PORT:-10911}
ns=127.0.0.1:$port
mkdir -p "$out"
rm -rf "$data"
"$bin" dev --flush "$flush" -p "$port" --broker-port "$broker_port" --data "$data" > "$out/dev-$flush.out" 2> "$out/dev-$flush.log" &
dev=$!
trap 'kill $dev 2>/dev/null || true; wait $dev 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 600); do
  grep -q "raftmq dev: ready" "$out/dev-$flush.out" 2>/dev/null && break
  kill -0 $dev 2>/dev/null || { echo "raftmq dev exited; see $out/dev-$flush.log" >&2; exit 1; }
  sleep 0.1
done
grep -q "raftmq dev: ready" "$out/dev-$flush.out" || { echo "raftmq dev not ready in 60 s" >&2; exit 1; }
echo "# raftmq dev --flush $flush (pid $dev), $(nproc) vCPU, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for k in 1 64 256; do
  cmd=("$bin" bench produce -n "$ns" -t BenchTopic --size 1024 --threads 1 --inflight "$k"
       --duration "${secs}s" --broker-pid "$dev")
  echo "\$ ${cmd[*]##*/}"
  "${cmd[@]}" 2> "$out/produce-$flush-$k.progress" | tee "$out/produce-$flush-$k.txt"
done
cmd=("$bin" bench produce -n "$ns" -t BenchBacklog --size 1024 --threads 2 --inflight 256
     --messages "$backlog" --duration 600s --broker-pid "$dev")
echo "\$ ${cmd[*]##*/}"
"${cmd[@]}" 2> "$out/fill-$flush.progress" | tee "$out/fill-$flush.txt"
cmd=("$bin" bench consume -n "$ns" -t BenchBacklog -g BenchDrain --from-start --drain
     --duration 600s --broker-pid "$dev")
echo "\$ ${cmd[*]##*/}"
"${cmd[@]}" 2> "$out/consume-$flush.progress" | tee "$out/consume-$flush.txt"
echo "# after the runs: $(grep -E 'VmRSS|RssAnon|RssFile' /proc/$dev/status | tr -s ' \t' ' ' | tr '\n' ';')"
echo "# data: $(du -sh "$data" | cut -f1)"
