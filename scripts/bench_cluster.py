"""Multi-node figures for `make bench` (issue 6, "Performance"): three real daemons on
loopback: replicated mutations per second, commit latency, a new node catching up on
100,000 operations (20,000 with --quick), and daemon memory idle and with the corpus.

Runs the release build of `examples/cluster_bench/` (built beforehand with
`cargo build --release --bin exo --example cluster_bench`; this script builds nothing), which
drives target/release/exo, and turns its JSON into rows shaped like scripts/bench.py's.
Run alone: `python3 scripts/bench_cluster.py [--quick]`. Nothing here fails on a number.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_example  # noqa: E402

# The goals for a Raspberry Pi: resident memory idle and with 100,000 entities.
GOAL_IDLE_MIB = 30.0
GOAL_LOADED_MIB = 150.0


def measure(quick=False):
    """Runs the benchmark once and returns its JSON object."""
    return bench_example.run(
        "cluster_bench", "CLUSTER_BENCH", "cargo build --release --bin exo --example cluster_bench", quick
    )


def _mib(kib):
    return kib / 1024


def _memory(m):
    return f"{_mib(m['rss_kib']):.1f} MiB RSS ({_mib(m['anon_kib']):.1f} MiB anonymous, {_mib(m['file_kib']):.1f} MiB mapped files)"


def _goal(m, goal):
    rss = _mib(m["rss_kib"])
    verdict = "meets" if rss < goal else "misses"
    return f"{rss / goal:.2f}x the {goal:.0f} MiB goal ({verdict}; anonymous {_mib(m['anon_kib']) / goal:.2f}x)"


def rows(quick=False, figures=None):
    f = figures if figures is not None else measure(quick)
    three = "3 daemons (release exo) on loopback, one cell, every node chain+store"
    out = []
    r = f["replicated"]
    out.append((
        "cluster: replicated mutations acknowledged per second",
        f"{r['per_s']:,.0f} /s",
        f"{r['writers']} concurrent clients spread over the 3 nodes, one task put per request, "
        f"{r['seconds']:.0f} s, {r['acknowledged']:,} acknowledged, {r['failed']} failed; {three}",
        "-",
    ))
    c = f["commit_latency"]
    out.append((
        "cluster: commit latency (acknowledged -> in a block), p50 / p99",
        f"{c['p50_ms']:.1f} / {c['p99_ms']:.1f} ms",
        f"{c['count']} mutations one at a time on node 0, Get until not pending; {three}",
        "-",
    ))
    k = f["catch_up"]
    load = f["loaded"]
    out.append((
        "cluster: new node catching up (chain / chain + index)",
        f"{k['chain_s']:.1f} / {k['index_s']:.1f} s",
        f"node with no chain and no index joining 2 daemons at height {load['height']} "
        f"({k['operations']:,} operations, {load['entities']:,} entities of examples/store_bench/generate.rs)",
        f"{k['operations'] / max(k['chain_s'], 1e-9):,.0f} operations/s",
    ))
    out.append((
        "cluster: daemon start with the corpus until its index is ready",
        f"{load['index_ready_s']:.1f} s",
        f"{load['operations']:,} operations written as committed blocks while stopped "
        f"({load['corpus_write_s']:.1f} s to generate and write); index rebuilt from the chain",
        "-",
    ))
    out.append((
        "cluster: daemon memory, idle",
        _memory(f["idle"]),
        f"one of {three}, links up, nothing written",
        _goal(f["idle"], GOAL_IDLE_MIB),
    ))
    out.append((
        "cluster: daemon memory with the corpus",
        _memory(load["memory"]),
        f"node 0 with {load['entities']:,} entities indexed, after its index rebuild",
        _goal(load["memory"], GOAL_LOADED_MIB),
    ))
    return out


def main():
    print("\n".join(bench_example.table(rows(quick="--quick" in sys.argv))))


if __name__ == "__main__":
    main()
