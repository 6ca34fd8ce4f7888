#!/usr/bin/env bash
# `make bench`: figures a user feels, printed and written to target/bench/report.md.
# It measures and reports; it never fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/bench.py "$@"
