#!/usr/bin/env bash
# Interop test: the Python client of tests/interop/exo_client.py (written from
# spec/protocol.md alone) against the Rust implementation.
#   1. replays the test vectors of fixtures/protocol/ byte for byte;
#   2. pings protocol/examples/ping_server.rs over loopback as a member;
#   3. is refused as a non-member, and for a cell the server does not serve.
# Needs: python3 with `pip install noiseprotocol blake3` (blake3 optional), cargo.
# Usage: tests/interop/run.sh   (from the repository root; honours CARGO_TARGET_DIR)
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
CLIENT=tests/interop/exo_client.py
VECTORS=fixtures/protocol
passed=0
failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAILED: $1"; failed=$((failed + 1)); }

input() { sed -n "s/^$1 = //p" "$VECTORS/inputs.txt"; }
CLIENT_SK=$(input initiator_sk)
SERVER_SK=$(input responder_sk)
SERVER_PK=$(input responder_pk)
CELL_PK=$(input cell_pk)
CLIENT_PK=$(input initiator_pk)

if out=$($PY $CLIENT --check-vectors $VECTORS 2>&1); then ok "vectors: $out"; else bad "vectors: $out"; fi

cargo build -q -p exocore-protocol --example ping_server || { echo "FAILED: build"; exit 1; }
SERVER_BIN="${CARGO_TARGET_DIR:-target}/debug/examples/ping_server"
LOG=$(mktemp)
"$SERVER_BIN" 127.0.0.1:0 "$SERVER_SK" "$CELL_PK" "$CLIENT_PK" >"$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null; rm -f "$LOG"' EXIT
ADDR=""
for _ in $(seq 1 100); do
    ADDR=$(sed -n 's/^listening on //p' "$LOG")
    [ -n "$ADDR" ] && break
    sleep 0.1
done
[ -n "$ADDR" ] || { echo "FAILED: ping_server did not start"; cat "$LOG"; exit 1; }

if out=$($PY $CLIENT "$ADDR" "$CLIENT_SK" "$CELL_PK" "$SERVER_PK" 2>&1) && [[ $out == "ping ok "* ]]; then
    ok "member ping: $out"
else
    bad "member ping: $out"
fi

# A stranger (the cell's own secret, not in the member list) must be refused.
STRANGER_SK=$(input cell_sk)
if out=$($PY $CLIENT "$ADDR" "$STRANGER_SK" "$CELL_PK" "$SERVER_PK" 2>&1); then
    bad "non-member was answered: $out"
else
    ok "non-member refused: $out"
fi

# A cell the server does not serve.
if out=$($PY $CLIENT "$ADDR" "$CLIENT_SK" "$SERVER_PK" "$SERVER_PK" 2>&1); then
    bad "unknown cell was answered: $out"
else
    ok "unknown cell refused: $out"
fi

# The server kept serving after the refusals.
if out=$($PY $CLIENT "$ADDR" "$CLIENT_SK" "$CELL_PK" "$SERVER_PK" 2>&1) && [[ $out == "ping ok "* ]]; then
    ok "member ping after refusals: $out"
else
    bad "member ping after refusals: $out"
fi

echo "--- ping_server log"
cat "$LOG"
echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
