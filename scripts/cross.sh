#!/usr/bin/env bash
# Cross-build the `exo` release binary for Raspberry Pi.
#   usage: scripts/cross.sh [armv7|aarch64|all]...   (default: all)
# Linkers and CC/AR for C code (LMDB) come from .cargo/config.toml; the toolchains
# from scripts/install-cross-deps.sh. Honors CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."   # repo root, so .cargo/config.toml applies

declare -A TRIPLE=([armv7]=armv7-unknown-linux-gnueabihf [aarch64]=aarch64-unknown-linux-gnu)

args=("$@"); ((${#args[@]})) || args=(all)
targets=()
for a in "${args[@]}"; do
  case "$a" in
    all) targets+=(armv7 aarch64) ;;
    armv7|aarch64) targets+=("$a") ;;
    *) echo "cross.sh: unknown target '$a' (want armv7, aarch64 or all)" >&2; exit 2 ;;
  esac
done

# Ask cargo where the target dir is rather than guessing (CARGO_TARGET_DIR, config, workspace).
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

installed="$(rustup target list --installed)"   # captured: grep -q in a pipe + pipefail can SIGPIPE
built=()
for t in "${targets[@]}"; do
  triple="${TRIPLE[$t]}"
  # Fail early with a hint instead of a confusing linker/std error.
  grep -qx "$triple" <<<"$installed" ||
    { echo "cross.sh: rust target $triple missing; run scripts/install-cross-deps.sh" >&2; exit 1; }
  echo "cross.sh: building $triple"
  start=$SECONDS
  cargo build --release --bin exo --target "$triple"
  echo "cross.sh: $triple built in $((SECONDS - start))s"
  built+=("$target_dir/$triple/release/exo")
done

for b in "${built[@]}"; do
  [[ -x "$b" ]] || { echo "cross.sh: expected binary $b not found" >&2; exit 1; }
  printf '%-80s %s bytes\n' "$b" "$(stat -c %s "$b")"
done
