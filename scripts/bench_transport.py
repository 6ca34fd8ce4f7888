"""Transport figures for `make bench`: handshakes, throughput and idle memory of the wire.

Runs the release build of `protocol/examples/transport_bench.rs` (built beforehand with
`cargo build --release --example transport_bench -p exocore-protocol`; this script builds
nothing) and turns its JSON into rows shaped like scripts/bench.py's:
(figure, value, measured on, ratio to baseline).

    from bench_transport import rows      # in scripts/bench.py
    rows()                                # -> list of 4-tuples

Run alone, it prints the rows as a table: `python3 scripts/bench_transport.py [--quick]`.
The binary is $TRANSPORT_BENCH if set, else $CARGO_TARGET_DIR/release/examples/transport_bench,
else target/release/examples/transport_bench. Nothing here fails on a number.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_example  # noqa: E402

# The goal: the full stack reaches this share of the in-process ceiling at 64 KiB.
GOAL_RATIO_64K = 0.80


def measure(quick=False):
    """Runs the benchmark once and returns its JSON object."""
    return bench_example.run("transport_bench", "TRANSPORT_BENCH", "cargo build --release --example transport_bench -p exocore-protocol", quick)


def size_name(size_bytes):
    return f"{size_bytes // 1024} KiB" if size_bytes % 1024 == 0 else f"{size_bytes} B"


def total_name(total_bytes):
    return f"{total_bytes / (1 << 20):.0f} MiB"


def rows(quick=False, figures=None):
    """The transport rows of the bench report. `figures` is an already measured JSON object
    (for tests); by default the benchmark is run."""
    f = figures if figures is not None else measure(quick)
    out = []
    hs = f["handshake"]
    out.append((
        "transport: handshakes per second (TCP connect + preamble + Noise XX)",
        f"{hs['handshakes_per_s']:.0f} /s ({hs['handshake_mean_ms']:.2f} ms each)",
        f"{hs['connections']} sequential connections in {hs['seconds']:.1f} s, loopback, both ends in one process",
        "-",
    ))
    for case in f["throughput"]:
        size = size_name(case["message_bytes"])
        on = f"{total_name(case['total_bytes'])} one way in {size} messages, loopback"
        full = case["full_stack_mib_per_s"]
        ceiling = case["in_process_mib_per_s"]
        raw = case["raw_tcp_mib_per_s"]
        ratio = full / ceiling
        goal = ""
        if case["message_bytes"] == 64 * 1024:
            verdict = "meets" if ratio >= GOAL_RATIO_64K else "below"
            goal = f", {verdict} the {GOAL_RATIO_64K:.0%} goal"
        out.append((
            f"transport: {size} messages, full stack (session → TCP → session)",
            f"{full:.1f} MiB/s ({case['full_stack_messages_per_s']:.0f} msg/s)",
            on,
            f"{ratio:.0%} of in-process ceiling{goal}; {full / raw:.0%} of raw TCP",
        ))
        out.append((
            f"transport: {size} messages, snow encrypt+decrypt in-process (ceiling)",
            f"{ceiling:.1f} MiB/s",
            "same chunks, one thread, no sockets",
            "-",
        ))
        out.append((
            f"transport: {size} messages, raw TCP (no encryption)",
            f"{raw:.1f} MiB/s",
            on,
            "-",
        ))
    idle = f["idle"]
    both_rss = idle["rss_bytes_per_connection_both_ends"]
    both_heap = idle["heap_bytes_per_connection_both_ends"]
    out.append((
        "transport: memory per idle connection",
        f"{both_rss / 1024:.1f} KiB RSS, {both_heap / 1024:.1f} KiB heap (both ends)",
        f"{idle['connections']} established sessions, initiator and responder in one process",
        "-",
    ))
    return out


def main():
    print("\n".join(bench_example.table(rows(quick="--quick" in sys.argv))))


if __name__ == "__main__":
    main()
