#!/usr/bin/env bash
# Runs `raftmq bench produce` (1, 64 and 256 in flight, 1 KiB) against a group of broker
# processes on loopback: `raftmq namesrv` and NODES `raftmq broker` processes with generated
# configs; then fills a BACKLOG-message backlog (256 in flight, 2 client instances) and drains
# it with `raftmq bench consume --from-start --drain`. Samples the memory of node n0 (the
# first leader) throughout and prints every node's at the end.
#
#   scripts/bench-group.sh sync|async [OUT_DIR]
#
# Environment: RAFTMQ (default target/release/raftmq), WORK (configs and data, removed first
# and afterwards; default /tmp/raftmq-bench-group), SECS (per run, default 10), NODES (3 or 1,
# default 3), BACKLOG (messages filled and drained, default 1000000; 0 skips it).
set -euo pipefail
flush=${1:?usage: bench-group.sh sync|async [OUT_DIR]}
out=${2:-bench-out}
bin=${RAFTMQ:-target/release/raftmq}
work=${WORK:-/tmp/raftmq-bench-group}
secs=${SECS:-10}
nodes=${NODES:-3}
backlog=${BACKLOG:-1000000}
case $nodes in 1) peers="n0-127.0.0.1:45911"; brokers="n0-127.0.0.1:15911" ;;
  3) peers="n0-127.0.0.1:45911;n1-127.0.0.1:45921;n2-127.0.0.1:45931"
     brokers="n0-127.0.0.1:15911;n1-127.0.0.1:15921;n2-127.0.0.1:15931" ;;
  *) echo "NODES must be 1 or 3" >&2; exit 2 ;; esac
ns=127.0.0.1:19877
case $flush in sync) fdt=SYNC_FLUSH ;; async) fdt=ASYNC_FLUSH ;; *) echo "sync or async" >&2; exit 2 ;; esac
mkdir -p "$out"
rm -rf "$work"; mkdir -p "$work"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" namesrv -p 19877 --listen 127.0.0.1 > "$work/namesrv.out" 2> "$work/namesrv.log" &
pids+=($!)
for i in $(seq 0 $((nodes - 1))); do
  cat > "$work/n$i.conf" <<CONF
brokerName=broker-a
brokerIP1=127.0.0.1
listenPort=$((15911 + i * 10))
namesrvAddr=$ns
storePathRootDir=$work/data-n$i
dLegerGroup=broker-a
dLegerPeers=$peers
dLegerSelfId=n$i
peerBrokerAddrs=$brokers
flushDiskType=$fdt
mapedFileSizeCommitLog=67108864
autoCreateTopicEnable=true
diskSpaceCleanForciblyRatio=100
CONF
  "$bin" broker -c "$work/n$i.conf" > "$work/n$i.out" 2> "$work/n$i.log" &
  pids+=($!)
done
n0=${pids[1]}
echo "# $nodes-process group, $fdt, $(nproc) vCPU, load $(cut -d' ' -f1-3 /proc/loadavg)"
for k in 1 64 256; do
  cmd=("$bin" bench produce -n "$ns" -t BenchTopic --size 1024 --threads 1 --inflight "$k"
       --duration "${secs}s" --broker-pid "$n0")
  echo "\$ ${cmd[*]##*/}"
  "${cmd[@]}" 2> "$out/group-$flush-$k.progress" | tee "$out/group-$flush-$k.txt"
done
if [ "$backlog" -gt 0 ]; then
  cmd=("$bin" bench produce -n "$ns" -t BenchBacklog --size 1024 --threads 2 --inflight 256
       --messages "$backlog" --duration 600s --broker-pid "$n0")
  echo "\$ ${cmd[*]##*/}"
  "${cmd[@]}" 2> "$out/group-$flush-fill.progress" | tee "$out/group-$flush-fill.txt"
  cmd=("$bin" bench consume -n "$ns" -t BenchBacklog -g BenchDrain --from-start --drain
       --duration 600s --broker-pid "$n0")
  echo "\$ ${cmd[*]##*/}"
  "${cmd[@]}" 2> "$out/group-$flush-drain.progress" | tee "$out/group-$flush-drain.txt"
fi
for i in $(seq 0 $((nodes - 1))); do
  echo "# n$i: $(grep -E 'VmRSS|RssAnon|RssFile' /proc/${pids[$((i + 1))]}/status | tr -s ' \t' ' ' | tr '\n' ';')"
done
