#!/usr/bin/env bash
# Load on loopback with wrk against examples/fresh_token.rs built in release:
# the public `/` and the guarded `/protected` in the same run, with the
# revocation store in memory and in Redis, and (with `authx`) the seed's AuthX
# FastAPI app under uvicorn on the same machine.
#
#   bench/load.sh [memory] [cache] [redis] [view] [cluster] [authx]
#                                      (default: memory cache redis view)
#   bench/load.sh guards
#   BASELINE=<git rev> bench/load.sh guards
#
# guards: the guard's cost inside a real server (bench/server.rs, axum): one
# handler behind no guard and behind each layer, req/s and the server's CPU
# per request (from /proc/<pid>/stat around each run), all in one run. With
# BASELINE, the library at that revision too (same bench server), alternating,
# and a last table: what this checkout adds as a share of what BASELINE adds.
#
# memory: the default (in-memory revocation store); cache: the same with the
# verified-token cache on; redis: revocations in Redis, asked on every request;
# view: Redis with the local view (checks from memory, kept current by pub/sub);
# cluster: a 3-primary Redis Cluster on loopback with the local view.
#
# Environment: DURATION (10s), THREADS (1: wrk on one core, the server on the other), CONNECTIONS (32),
# ROUNDS (guards: 5), ROUTES (guards: the rows to run, e.g. "3 10"; their twins come along),
# PYTHON (a python with authx, fastapi, uvicorn; see tests/interop/requirements.txt).
# Needs wrk, curl, jq; `redis`, `view` and `cluster` need redis-server (and redis-cli).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-32}"
MODES=("$@")
[ ${#MODES[@]} -eq 0 ] && MODES=(memory cache redis view)

SECRET="load-test-secret-of-at-least-32-bytes"
LOGIN='{"username":"user1","password":"password1"}'
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

if [ "${MODES[0]}" = guards ]; then
  . bench/servers.sh
  tck=$(getconf CLK_TCK)
  post=$(mktemp --suffix=.lua); echo 'wrk.method = "POST"' >"$post"
  start_server() { # binary
    local out; out=$(mktemp)
    "$1" >"$out" &
    pid=$!; pids+=($pid)
    for _ in $(seq 1 100); do grep -q '^csrf ' "$out" && break; sleep 0.1; done
    base=$(awk '/^listening on/ {print $3}' "$out")
    hs256=$(awk '$1 == "token" && $2 == "hs256" {print $3}' "$out")
    es256=$(awk '$1 == "token" && $2 == "es256" {print $3}' "$out")
    cookie=$(awk '$1 == "token" && $2 == "cookie" {print $3}' "$out")
    csrf=$(awk '$1 == "csrf" {print $2}' "$out")
    wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "$base/public" >/dev/null # warm-up
  }
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
  # One route: "req/s p99 cpu-µs-per-request"
  route() { # path [wrk args...]
    local path=$1; shift
    local before after out rps p99 reqs
    before=$(cpu_ticks)
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$base$path")
    after=$(cpu_ticks)
    if [ "${EXPECT_OK:-1}" = 1 ] && grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers on $path:" >&2; echo "$out" >&2; return 1; fi
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "$rps $p99 $(awk -v d=$((after - before)) -v t="$tck" -v n="$reqs" 'BEGIN {printf "%.2f", d / t * 1e6 / n}')"
  }
  # Every route in each round, ROUNDS rounds (alternating, so the machine's
  # noise falls on every route alike); medians per route.
  ROUNDS="${ROUNDS:-5}"
  # Each guarded route is compared with the unguarded route receiving the very
  # same request (headers, method): what hyper spends reading a 200-byte
  # Authorization header is not the guard's cost. `twin` names that route.
  names=("no guard (/public)" "no guard, same Bearer header" "no guard, same cookie + CSRF (POST)" \
         "RequireAuth, HS256" "RequireFresh inside RequireAuth" "cookie + CSRF (POST)" \
         "verified-token cache, HS256" "RequireAuth, ES256" "refused (401): no token" "refused (401): bad signature" \
         "a layer that does nothing (axum's share)")
  twin=(0 1 2 1 1 2 1 1 0 1 1)
  run_route() { # index
    case $1 in
      0) route /public ;;
      1) route /public -H "Authorization: Bearer $hs256" ;;
      2) route /public -s "$post" -H "Cookie: access_token_cookie=$cookie" -H "X-CSRF-TOKEN: $csrf" ;;
      3) route /auth -H "Authorization: Bearer $hs256" ;;
      4) route /fresh -H "Authorization: Bearer $hs256" ;;
      5) route /cookie -s "$post" -H "Cookie: access_token_cookie=$cookie" -H "X-CSRF-TOKEN: $csrf" ;;
      6) route /cached -H "Authorization: Bearer $hs256" ;;
      7) route /es256 -H "Authorization: Bearer $es256" ;;
      8) EXPECT_OK=0 route /auth ;;
      9) EXPECT_OK=0 route /auth -H "Authorization: Bearer ${hs256%?}A" ;;
      10) route /layer -H "Authorization: Bearer $hs256" ;;
    esac
  }
  # ROUTES: the rows to measure (indices into names, from 0: 3 is RequireAuth,
  # 10 the do-nothing layer; default all), each with its twin: fewer routes
  # leave time for more rounds, so less noise.
  picked=()
  for i in ${ROUTES:-${!names[@]}}; do
    [ -n "${names[$i]:-}" ] || { echo "ROUTES: no route $i (0-$((${#names[@]} - 1)))" >&2; exit 1; }
    picked+=("$i" "${twin[$i]}")
  done
  mapfile -t picked < <(printf '%s\n' "${picked[@]}" | sort -nu)
  # Results: "server route req/s p99 cpu round".
  results=$(mktemp)
  for round in $(seq 1 "$ROUNDS"); do
    for s in "${!servers[@]}"; do
      start_server "${servers[$s]}"
      for i in "${picked[@]}"; do echo "$s $i $(run_route "$i") $round" >>"$results"; done
      kill "$pid"; wait "$pid" 2>/dev/null || true
    done
  done
  median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  col() { awk -v s="$1" -v i="$2" -v c="$3" '$1 == s && $2 == i {print $c}' "$results" | median; }
  # The guard's added CPU: the median over rounds of (route - its twin) in the
  # same round, so a slow phase of the machine falls on both sides of each pair.
  added() { awk -v s="$1" -v i="$2" -v b="$3" '$1 == s && $2 == i {r[$6] = $5} $1 == s && $2 == b {t[$6] = $5}
                                              END {for (k in r) printf "%.3f\n", r[k] - t[k]}' "$results" | median; }
  for s in "${!servers[@]}"; do
    echo "### ${labels[$s]}"
    echo
    echo "| route | req/s | p99 | ratio to its unguarded twin | server CPU per request | added by the guard |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for i in "${picked[@]}"; do
      b=${twin[$i]}
      awk -v l="${names[$i]}" -v rps="$(col "$s" "$i" 3)" \
        -v p99="$(awk -v s="$s" -v i="$i" '$1 == s && $2 == i {print $4}' "$results" | tail -1)" \
        -v cpu="$(col "$s" "$i" 5)" -v prps="$(col "$s" "$b" 3)" -v add="$(added "$s" "$i" "$b")" \
        -v same="$([ "$b" = "$i" ] && echo 1 || echo 0)" \
        'BEGIN {if (same) printf "| %s | %.0f | %s | 1 | %.2f µs | |\n", l, rps, p99, cpu;
                else printf "| %s | %.0f | %s | %.3f | %.2f µs | %+.2f µs |\n", l, rps, p99, rps / prps, cpu, add}'
    done
    echo
  done
  if [ ${#servers[@]} -eq 2 ]; then
    # The share of BASELINE's added CPU this checkout adds: measured in one
    # run, it carries over between machines (and days) better than µs do.
    echo "### this against ${labels[0]}"
    echo
    echo "| route | added by ${labels[0]} | added by this | this / ${labels[0]} |"
    echo "| --- | --- | --- | --- |"
    for i in "${picked[@]}"; do
      b=${twin[$i]}
      [ "$b" = "$i" ] && continue
      awk -v l="${names[$i]}" -v old="$(added 0 "$i" "$b")" -v new="$(added 1 "$i" "$b")" \
        'BEGIN {printf "| %s | %+.2f µs | %+.2f µs | %s |\n", l, old, new, (old > 0 ? sprintf("%.2f", new / old) : "-")}'
    done
    echo
  fi
  echo "(medians of $ROUNDS rounds of $DURATION per route, servers and routes alternating;"
  echo " added: median of the per-round differences to the twin; p99 of the last round)"
  exit 0
fi

cargo build --quiet --release --example fresh_token --features redis
bin="target/release/examples/fresh_token"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # url
  for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "server at $1 did not come up" >&2; return 1
}

# One wrk run: prints "requests/s p99" for a URL (and optional header).
load() { # url [header]
  local out
  if [ $# -gt 1 ]; then
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$2" "$1")
  else
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$1")
  fi
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers under load:" >&2; echo "$out" >&2; return 1; fi
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$rps $p99"
}

peak_rss_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

row() { # label public guarded pid
  local pub=($2) grd=($3)
  local ratio
  ratio=$(awk -v g="${grd[0]}" -v p="${pub[0]}" 'BEGIN {printf "%.2f", g/p}')
  printf '| %s | %s | %s | %s | %s | %s | %s MB |\n' "$1" "${pub[0]}" "${pub[1]}" "${grd[0]}" "${grd[1]}" "$ratio" "$(peak_rss_mb "$4")"
}

echo "| server | / req/s | / p99 | /protected req/s | /protected p99 | guarded/public | peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- |"

for mode in "${MODES[@]}"; do
  port=$(free_port)
  case "$mode" in
    memory)
      HOST=127.0.0.1 PORT=$port JWT_SECRET_KEY=$SECRET "$bin" >/dev/null &
      pids+=($!); pid=$!
      label="tower-authx, memory store" ;;
    cache)
      HOST=127.0.0.1 PORT=$port JWT_SECRET_KEY=$SECRET JWT_VERIFIED_CACHE=10000 "$bin" >/dev/null &
      pids+=($!); pid=$!
      label="tower-authx, memory store, verified-token cache" ;;
    redis|view)
      rport=$(free_port)
      redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
      pids+=($!)
      sleep 0.3
      view=$([ "$mode" = view ] && echo 100000 || echo 0)
      HOST=127.0.0.1 PORT=$port JWT_SECRET_KEY=$SECRET REDIS_URL="redis://127.0.0.1:$rport/" \
        REDIS_LOCAL_VIEW=$view "$bin" >/dev/null &
      pids+=($!); pid=$!
      if [ "$mode" = view ]; then label="tower-authx, Redis store, local view"; else label="tower-authx, Redis store (asked every request)"; fi ;;
    cluster)
      dir=$(mktemp -d)
      nodes=()
      for _ in 1 2 3; do
        while :; do cport=$(free_port); [ "$cport" -lt 55000 ] && break; done
        (cd "$dir" && redis-server --port "$cport" --bind 127.0.0.1 --cluster-enabled yes \
          --cluster-config-file "nodes-$cport.conf" --save "" --appendonly no >/dev/null) &
        pids+=($!)
        nodes+=("127.0.0.1:$cport")
      done
      sleep 0.5
      redis-cli --cluster create "${nodes[@]}" --cluster-yes >/dev/null
      until redis-cli -p "${nodes[0]#*:}" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
      urls=$(printf 'redis://%s,' "${nodes[@]}"); urls=${urls%,}
      HOST=127.0.0.1 PORT=$port JWT_SECRET_KEY=$SECRET REDIS_URL="$urls" "$bin" >/dev/null &
      pids+=($!); pid=$!
      label="tower-authx, Redis Cluster (3 primaries), local view" ;;
    authx)
      PYTHON="${PYTHON:-python3}"
      JWT_SECRET_KEY=$SECRET "$PYTHON" -m uvicorn --app-dir tests/interop authx_fresh_token:app \
        --host 127.0.0.1 --port "$port" --log-level warning &
      pids+=($!); pid=$!
      label="AuthX 1.7 + FastAPI, uvicorn" ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  base="http://127.0.0.1:$port"
  wait_for "$base/"
  token=$(curl -fsS -X POST "$base/login" -H 'Content-Type: application/json' -d "$LOGIN" | jq -r .fresh_token)
  public=$(load "$base/")
  guarded=$(load "$base/protected" "Authorization: Bearer $token")
  row "$label" "$public" "$guarded" "$pid"
done
