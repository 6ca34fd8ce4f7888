"""Store figures for `make bench` (issue 5, "Performance"): index build rate, full-text and
trait-field range query latency, mutation -> visible latency, and memory with the index open,
on 100,000 generated entities (20,000 with --quick); then mutations through a running daemon
(the release `exo` binary) with 1 and 8 concurrent writers: mutations/s and request ->
acknowledged (= visible) latency.

Runs the release build of `examples/store_bench/` (built beforehand with
`cargo build --release --example store_bench`; this script builds nothing) and turns its
JSON into rows shaped like scripts/bench.py's: (figure, value, measured on, ratio to baseline).

    from bench_store import rows as store_rows   # in scripts/bench.py
    store_rows()                                 # -> list of 4-tuples

Run alone, it prints the rows as a table: `python3 scripts/bench_store.py [--quick]`.
The binary is $STORE_BENCH if set, else $CARGO_TARGET_DIR/release/examples/store_bench,
else target/release/examples/store_bench. Nothing here fails on a number.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_example  # noqa: E402

# The goal for full-text query latency, p99.
GOAL_FULL_TEXT_P99_MS = 10.0


def measure(quick=False):
    """Runs the benchmark once and returns its JSON object."""
    return bench_example.run("store_bench", "STORE_BENCH", "cargo build --release --example store_bench", quick)


def _p50_p99(latency):
    return f"{latency['p50_ms']:.2f} / {latency['p99_ms']:.2f} ms"


def rows(quick=False, figures=None):
    """The store rows of the bench report. `figures` is an already measured JSON object
    (for tests); by default the benchmark is run."""
    f = figures if figures is not None else measure(quick)
    b = f["build"]
    corpus = (
        f"{b['entities']:,} generated entities "
        f"({', '.join(f'{n:,} {k}s' for k, n in sorted(b['kinds'].items(), key=lambda kv: -kv[1]))})"
    )
    where = f"tantivy index on disk in {f['temp_dir']}"
    out = []
    out.append((
        "store: index build rate (StoreIndex::rebuild)",
        f"{b['entities_per_s']:,.0f} entities/s ({b['operations_per_s']:,.0f} ops/s)",
        f"{corpus}, {b['operations']:,} operations, {b['plaintext_bytes'] / 1e6:.0f} MB of "
        f"plaintext, {b['seconds']:.1f} s, {b['index_bytes'] / 1e6:.0f} MB index; {where}",
        "-",
    ))
    t = f["full_text"]
    p99 = t["latency"]["p99_ms"]
    verdict = "meets" if p99 < GOAL_FULL_TEXT_P99_MS else "misses"
    out.append((
        "store: full-text query latency, p50 / p99",
        _p50_p99(t["latency"]),
        f"{t['latency']['count']} queries of {t['words']} (e.g. `{t['example']}`), first page of "
        f"20 by score, {t['mean_matches']:,.0f} matches on average; {corpus}",
        f"p99 {p99 / GOAL_FULL_TEXT_P99_MS:.2f}x the {GOAL_FULL_TEXT_P99_MS:.0f} ms goal ({verdict})",
    ))
    r = f["range"]
    out.append((
        "store: trait-field range query latency, p50 / p99",
        _p50_p99(r["latency"]),
        f"{r['latency']['count']} queries like `{r['example']}`, first page of 20 newest, "
        f"{r['mean_matches']:,.0f} matches on average; {corpus}",
        "-",
    ))
    v = f["mutation_visible"]
    out.append((
        "store: mutation -> visible to a query, p50 / p99",
        _p50_p99(v["total"]),
        f"{v['total']['count']} new notes on the {b['entities']:,}-entity index: prepare "
        f"({v['prepare']['p50_ms']:.2f} ms p50) + apply with tantivy commit, fsync and reload "
        f"({v['apply']['p50_ms']:.1f} ms p50) + the query finding it "
        f"({v['query']['p50_ms']:.2f} ms p50); the daemon's read-your-writes path without the "
        f"chain write (see the chain rows); {where}",
        "-",
    ))
    w = f.get("writers")
    for case in (w or {}).get("cases", []):
        n = case["writers"]
        found = case["found_after_ack"]
        out.append((
            f"store: mutations through the daemon, {n} writer{'s' if n > 1 else ''}: "
            "acknowledged (= visible) p50 / p99",
            f"{_p50_p99(case['acknowledged'])}, {case['mutations_per_s']:,.0f} mutations/s",
            f"{case['mutations']} new notes on a fresh one-node cell, {n} connection(s) on "
            "loopback, each waiting for its Mutated answer (entry durable in the chain's pending "
            "store and folded into the index) then querying `op:ID` "
            f"({case['not_found_after_ack']} not found right after), {found['p50_ms']:.2f} ms p50; "
            f"{where.replace('tantivy index', 'daemon')}",
            "-",
        ))
    m = f["memory"]
    out.append((
        "store: memory with the index open (proxy for the daemon's)",
        f"{m['rss_after_queries_kib'] / 1024:.0f} MiB RSS (peak {m['hwm_kib'] / 1024:.0f} MiB)",
        f"VmRSS of a fresh process that opened the {b['entities']:,}-entity index "
        f"({m['open_ms']:.0f} ms, {m['rss_open_kib'] / 1024:.0f} MiB just after open, "
        f"{m['rss_before_open_kib'] / 1024:.0f} MiB before) and ran {m['queries']} queries; "
        "proxy: the daemon also holds the chain and the network, not counted",
        "-",
    ))
    return out


def main():
    print("\n".join(bench_example.table(rows(quick="--quick" in sys.argv))))


if __name__ == "__main__":
    main()
