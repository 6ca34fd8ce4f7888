"""Chain figures for `make bench` (issue 4, "Performance"): durable appends per second,
single-node commit latency, the simulated 3-node commit latency, and the engine's startup
on a chain of 100,000 operations.

Runs the release build of `examples/chain_bench.rs` (built beforehand with
`cargo build --release --example chain_bench`; this script builds nothing) and turns its
JSON into rows shaped like scripts/bench.py's: (figure, value, measured on, ratio to baseline).

    from bench_chain import rows as chain_rows   # in scripts/bench.py
    chain_rows()                                 # -> list of 4-tuples

Run alone, it prints the rows as a table: `python3 scripts/bench_chain.py [--quick]`.
The binary is $CHAIN_BENCH if set, else $CARGO_TARGET_DIR/release/examples/chain_bench,
else target/release/examples/chain_bench. Nothing here fails on a number.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_example  # noqa: E402

# The goal for durable appends with batched commits.
GOAL_APPENDS_PER_S = 20_000


def measure(quick=False):
    """Runs the benchmark once and returns its JSON object."""
    return bench_example.run("chain_bench", "CHAIN_BENCH", "cargo build --release --example chain_bench", quick)


def rows(quick=False, figures=None):
    """The chain rows of the bench report. `figures` is an already measured JSON object
    (for tests); by default the benchmark is run."""
    f = figures if figures is not None else measure(quick)
    out = []
    single = None
    for case in f["appends"]:
        if case["batch"] == 1:
            single = case["operations_per_s"]
    for case in f["appends"]:
        rate = case["operations_per_s"]
        ratio = "-"
        if case["batch"] > 1:
            verdict = "meets" if rate >= GOAL_APPENDS_PER_S else "below"
            ratio = f"{verdict} the {GOAL_APPENDS_PER_S:,}/s goal"
            if single:
                ratio += f"; {rate / single:.0f}x one per transaction"
        out.append((
            f"chain: durable appends, {case['batch']} per transaction (fsync'd)",
            f"{rate:,.0f} ops/s ({case['transactions_per_s']:,.0f} commits/s)",
            f"{case['operations']:,} signed entries of {case['operation_bytes']} B, "
            f"ChainStore::put_pending, LMDB in {f['temp_dir']}",
            ratio,
        ))
    first = f["appends"][0]
    out.append((
        "chain: sign + seal an entry (writer side, one core)",
        f"{first['sign_and_seal_per_s']:,.0f} ops/s",
        f"{first['operation_bytes']} B entries, XChaCha20-Poly1305 + ed25519",
        "-",
    ))
    c = f["commit_latency"]
    out.append((
        "chain: commit latency, one node: append durable -> block committed, p50 / p99",
        f"{c['p50_ms']:.1f} / {c['p99_ms']:.1f} ms",
        f"{c['writes']} writes every {c['write_interval_ms']} ms in {c['blocks']} blocks, "
        f"real time, ticks every {c['tick_ms']} ms, LMDB in {f['temp_dir']}",
        f"propose delay {c['propose_delay_ms']} ms (default config)",
    ))
    s = f["simulated_3_nodes"]
    out.append((
        "chain: commit latency, 3 simulated nodes, p50 / p99",
        f"{s['p50_ticks']:.1f} / {s['p99_ticks']:.1f} ticks",
        f"{s['writes']} writes, tick {s['tick_ms']} ms, network delay {s['network_delay_ms']} ms, "
        "no faults (tests/simulation.rs)",
        "-",
    ))
    e = f.get("engine_open")
    if e:
        out.append((
            "chain: engine startup (membership folded from the chain)",
            f"{e['ms']:.1f} ms",
            f"{e['operations']:,} operations in {e['blocks']:,} blocks, "
            f"{e['disk_bytes'] / (1 << 20):.0f} MiB, LMDB in {f['temp_dir']}",
            "-",
        ))
    return out


def main():
    print("\n".join(bench_example.table(rows(quick="--quick" in sys.argv))))


if __name__ == "__main__":
    main()
