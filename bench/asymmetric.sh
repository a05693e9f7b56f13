#!/usr/bin/env bash
# Asymmetric tokens inside a real server, side by side with the closest peer:
# our bench server (bench/server.rs) on each backend (default aws-lc-rs, and
# ring) and jwt-authorizer 0.15 (bench/peers, ring) in front of the same
# handler, with the same RS256, ES256 and EdDSA tokens (the fixtures' keys). Each guarded route is
# compared with the unguarded route receiving the very same header; the
# server's CPU per request is read from /proc/<pid>/stat around each wrk run.
# Servers and routes alternate, ROUNDS rounds; medians and ranges. Ends with
# `openssl speed`'s verify times on this machine, the limit.
#
#   bench/asymmetric.sh
#
# Environment: DURATION (5s), ROUNDS (5), CONNECTIONS (32). Needs wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-5s}"
ROUNDS="${ROUNDS:-5}"
CONNECTIONS="${CONNECTIONS:-32}"
tck=$(getconf CLK_TCK)

cargo build --quiet --release -p tower-authx-dev --example bench_server --features axum
cp target/release/examples/bench_server target/release/examples/bench_server-aws-lc-rs
cargo build --quiet --release -p tower-authx-dev --example bench_server --no-default-features --features axum,ring
cp target/release/examples/bench_server target/release/examples/bench_server-ring
CARGO_TARGET_DIR="$PWD/target/peers" cargo build --quiet --release --manifest-path bench/peers/Cargo.toml

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
start() { # name binary
  local out; out=$(mktemp)
  "$2" >"$out" &
  pids+=($!); eval "pid_$1=$!"
  for _ in $(seq 1 100); do grep -q '^listening on' "$out" && break; sleep 0.1; done
  sleep 0.5
  eval "base_$1=$(awk '/^listening on/ {print $3}' "$out")"
  [ "$1" = ours ] && tokens="$out"
  return 0
}
start ours target/release/examples/bench_server-aws-lc-rs
start ring target/release/examples/bench_server-ring
start peer target/peers/release/tower-authx-bench-peers
for _ in $(seq 1 50); do grep -q '^token rs256' "$tokens" && break; sleep 0.1; done
rs256=$(awk '$1 == "token" && $2 == "rs256" {print $3}' "$tokens")
es256=$(awk '$1 == "token" && $2 == "es256" {print $3}' "$tokens")
hs256=$(awk '$1 == "token" && $2 == "hs256" {print $3}' "$tokens")
eddsa=$(awk '$1 == "token" && $2 == "eddsa" {print $3}' "$tokens")
dpop_token=$(awk '$1 == "token" && $2 == "dpop" {print $3}' "$tokens")
dpop_proof=$(awk '$1 == "proof" && $2 == "dpop" {print $3}' "$tokens")

# CPU µs per request of `server` on `path` with the credential of `token`
# (a Bearer token, or `dpop`: the DPoP-bound token and its proof).
cpu_per_request() { # server path token
  local pid base before after out reqs headers
  pid=$(eval echo "\$pid_$1"); base=$(eval echo "\$base_$1")
  if [ "$3" = dpop ]; then
    headers=(-H "Authorization: DPoP $dpop_token" -H "DPoP: $dpop_proof")
  else
    headers=(-H "Authorization: Bearer $(eval echo "\$$3")")
  fi
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "${headers[@]}" "$base$2")
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers from $1 on $2" >&2; exit 1; fi
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  awk -v d=$((after - before)) -v t="$tck" -v n="$reqs" 'BEGIN {printf "%.2f", d / t * 1e6 / n}'
}

# Rows: "server guarded-path token label"; each against /public with the token.
rows=(
  "ours /auth hs256 RequireAuth,_HS256"
  "ours /rs256 rs256 RequireAuth,_RS256"
  "ring /rs256 rs256 RequireAuth_on_ring,_RS256"
  "peer /rs256 rs256 jwt-authorizer,_RS256"
  "ours /rs256-cached rs256 RequireAuth,_RS256,_verified-token_cache_hit"
  "ours /es256 es256 RequireAuth,_ES256"
  "ring /es256 es256 RequireAuth_on_ring,_ES256"
  "peer /es256 es256 jwt-authorizer,_ES256"
  "ours /eddsa eddsa RequireAuth,_EdDSA"
  "ring /eddsa eddsa RequireAuth_on_ring,_EdDSA"
  "peer /eddsa eddsa jwt-authorizer,_EdDSA"
  "ours /dpop dpop RequireAuth,_DPoP-bound_HS256_token,_ES256_proof_(no_replay_store)"
)
results=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!rows[@]}"; do
    read -r server path token _ <<<"${rows[$i]}"
    guarded=$(cpu_per_request "$server" "$path" "$token")
    public=$(cpu_per_request "$server" /public "$token")
    echo "$i $guarded $public" >>"$results"
  done
done

echo "| route | server CPU per request | added by the guard (median) | range over $ROUNDS rounds |"
echo "| --- | --- | --- | --- |"
for i in "${!rows[@]}"; do
  read -r _ _ _ label <<<"${rows[$i]}"
  median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.1f %.1f %.1f\n", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
  read -r cpu _ _ < <(awk -v i="$i" '$1 == i {print $2}' "$results" | median)
  read -r added low high < <(awk -v i="$i" '$1 == i {print $2 - $3}' "$results" | median)
  echo "| ${label//_/ } | $cpu µs | +$added µs | +$low to +$high µs |"
done
echo
echo "(DURATION=$DURATION per route, $ROUNDS rounds, wrk -t1 -c$CONNECTIONS; $(date -u +%F))"
echo
openssl speed -seconds 3 rsa2048 ecdsap256 2>/dev/null | awk '
  /^rsa 2048 bits/ { printf "openssl speed, verify: RSA-2048 %.1f µs", 1e6 / $NF }
  /nistp256/ { printf ", P-256 %.1f µs\n", 1e6 / $NF }'
