#!/usr/bin/env bash
# Idle streams that end with their credential (issue 41): the axum example in
# release, N idle WebSockets on its guarded /ws (EndWithCredentialLayer) held
# by Python's `websockets`; the server's resident memory before and after they
# open (per stream), and its CPU over IDLE seconds while they stay idle (from
# /proc/<pid>/stat). Memory per stream is all of it: hyper's connection, the
# WebSocket's buffers, axum's task, and this crate's share (the stream's slot
# in the schedule and the upgrade request kept for renewal).
#
#   bench/idle_streams.sh            # N=5000 IDLE=10 ROUNDS=3
#
# Needs curl, jq and a python with websockets (PYTHON, default the interop venv).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-5000}"; IDLE="${IDLE:-10}"; ROUNDS="${ROUNDS:-3}"
PYTHON="${PYTHON:-target/interop-venv/bin/python}"
cargo build --release -q -p tower-authx-dev --features axum --example axum
bin=target/release/examples/axum
ticks=$(getconf CLK_TCK)

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

round() {
  local kind=$1 port log pid token before after c0 c1
  port=$((20000 + RANDOM % 20000)); log=$(mktemp)
  MAX_CONNECTIONS=$((N + 100)) MAX_CONNECTIONS_PER_CLIENT=$((N + 100)) \
    ACCESS_TOKEN_LIFETIME_SECS=3600 PORT=$port $bin >"$log" 2>&1 &
  pid=$!
  until grep -q listening "$log"; do sleep 0.1; done
  token=$(curl -s -X POST "localhost:$port/login" -H 'content-type: application/json' \
    -d '{"username":"user1","password":"password1"}' | jq -r .fresh_token)
  sleep 0.5; before=$(rss $pid)
  exec {hold}> >("$PYTHON" tests/interop/hold_websockets.py "ws://127.0.0.1:$port/ws" "$token" "$N" >"$log.client")
  until grep -q '^open' "$log.client" 2>/dev/null; do sleep 0.2; done
  sleep 1; after=$(rss $pid); c0=$(cpu $pid); sleep "$IDLE"; c1=$(cpu $pid)
  printf '%-5s %6d streams  RSS %7d -> %7d KiB  %6.0f B/stream  idle CPU %5.2f%% of a core\n' \
    "$kind" "$N" "$before" "$after" "$(echo "($after - $before) * 1024 / $N" | bc -l)" \
    "$(echo "($c1 - $c0) * 100 / $ticks / $IDLE" | bc -l)"
  exec {hold}>&-; sleep 0.5; kill $pid; wait $pid 2>/dev/null || true; rm -f "$log" "$log.client"
}
for _ in $(seq "$ROUNDS"); do round ws; done
