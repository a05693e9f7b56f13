# Sourced by bench/load.sh (guards) and bench/instructions.sh, from the
# repository's root: builds bench/server.rs in release and sets `servers`
# (binaries) and `labels`. With BASELINE=<git rev>, the same bench server
# built on the library as it was at that revision comes first.
cargo build --quiet --release -p tower-authx-dev --example bench_server --features axum
servers=(target/release/examples/bench_server)
labels=(this)
if [ -n "${BASELINE:-}" ]; then
  # A target of its own, and the sources always at the same path: cargo
  # remembers where a build's sources were and checks those files again
  # (a fresh temporary tree each time left it checking a stale one).
  baseline_target="$PWD/target/baseline"
  baseline_tree="$baseline_target/source"
  rm -rf "$baseline_tree" && mkdir -p "$baseline_tree"
  git archive "$BASELINE" | tar -x -C "$baseline_tree"
  cp bench/server.rs "$baseline_tree/bench/server.rs"
  (cd "$baseline_tree" && CARGO_TARGET_DIR="$baseline_target" \
    cargo build --quiet --release -p tower-authx-dev --example bench_server --features axum)
  cp "$baseline_target/release/examples/bench_server" "$baseline_target/bench_server-$BASELINE"
  servers=("$baseline_target/bench_server-$BASELINE" "${servers[@]}")
  labels=("$BASELINE" "${labels[@]}")
fi
