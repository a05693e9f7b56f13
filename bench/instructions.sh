#!/usr/bin/env bash
# Instructions per request added by the guard, counted by valgrind (callgrind):
# noise-free where wrk's CPU figures on a shared machine are not. The bench
# server (bench/server.rs) answers N requests on GET /public and on GET /auth,
# both with the same Authorization header; startup is measured apart and
# subtracted.
#
#   bench/instructions.sh                 # this checkout
#   BASELINE=<git rev> bench/instructions.sh   # that revision's library too
#
# Environment: N (4000 requests). Needs valgrind and curl.
# Under valgrind the CPU's SHA and AVX-512 instructions are not offered, so
# SHA-256 is counted in its portable form (the same in every revision): compare
# the figures with each other, not with wrk's times.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-4000}"

. bench/servers.sh

# Instructions the server ran for `n` requests to `path` (0: startup only),
# sent with the token (`good`), a token whose signature is wrong (`bad`), none,
# or (`cookie`) as a POST with the cookie-borne token and its CSRF header.
count() { # binary path n [good|bad|none|cookie]
  local out profile pid token base credential cookie csrf
  out=$(mktemp); profile=$(mktemp -u)
  TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$profile" "$1" >"$out" 2>/dev/null &
  pid=$!
  for _ in $(seq 1 600); do grep -q '^csrf ' "$out" && break; sleep 0.1; done
  base=$(awk '/^listening on/ {print $3}' "$out")
  token=$(awk '$1 == "token" && $2 == "hs256" {print $3}' "$out")
  cookie=$(awk '$1 == "token" && $2 == "cookie" {print $3}' "$out")
  csrf=$(awk '$1 == "csrf" {print $2}' "$out")
  case "${4:-good}" in
    good) credential=(-H "Authorization: Bearer $token") ;;
    bad) credential=(-H "Authorization: Bearer ${token%?}A") ;;
    none) credential=() ;;
    cookie) credential=(-X POST -H "Cookie: access_token_cookie=$cookie" -H "X-CSRF-TOKEN: $csrf") ;;
  esac
  if [ "$3" -gt 0 ]; then
    curl -s -S -o /dev/null --no-progress-meter --parallel --parallel-max 4 "${credential[@]}" "$base$2?i=[1-$3]"
  fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  callgrind_annotate "$profile" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
  rm -f "$profile"*
}

echo "| library | /public (same header) | RequireAuth, HS256 | added by the guard | cookie + CSRF (POST) | refused: no token | refused: bad signature |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for s in "${!servers[@]}"; do
  startup=$(count "${servers[$s]}" /public 0)
  public=$(count "${servers[$s]}" /public "$N")
  guarded=$(count "${servers[$s]}" /auth "$N")
  bare=$(count "${servers[$s]}" /public "$N" none)
  missing=$(count "${servers[$s]}" /auth "$N" none)
  forged=$(count "${servers[$s]}" /auth "$N" bad)
  posted=$(count "${servers[$s]}" /public "$N" cookie)
  cookies=$(count "${servers[$s]}" /cookie "$N" cookie)
  awk -v l="${labels[$s]}" -v z="$startup" -v p="$public" -v g="$guarded" -v b="$bare" \
    -v m="$missing" -v f="$forged" -v q="$posted" -v c="$cookies" -v n="$N" \
    'BEGIN {printf "| %s | %.0f | %.0f | %+.0f | %+.0f | %+.0f | %+.0f |\n", l, (p - z) / n, (g - z) / n,
            (g - p) / n, (c - q) / n, (m - b) / n, (f - p) / n}'
done
echo
echo "(instructions per request, $N requests each over 4 connections, one worker thread;"
echo " each guarded route against /public receiving the same request: same header, none, or the same POST)"
