"""App host figures for `make bench` (issue 7, "Performance"): store query round trips per
second from inside an app, fuel per simple call, app start time, memory per idle instance.

Runs the release build of `examples/apps_bench/` (built beforehand with
`cargo build --release --example apps_bench`; this script builds nothing) and turns its JSON
into rows shaped like scripts/bench.py's: (figure, value, measured on, ratio to baseline).

Run alone, it prints the rows as a table: `python3 scripts/bench_apps.py [--quick]`.
The binary is $APPS_BENCH if set, else $CARGO_TARGET_DIR/release/examples/apps_bench,
else target/release/examples/apps_bench. Nothing here fails on a number.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_example  # noqa: E402


def rows(quick=False, figures=None):
    """The app rows of the bench report; `figures` is an already measured JSON object."""
    f = figures if figures is not None else bench_example.run(
        "apps_bench", "APPS_BENCH", "cargo build --release --example apps_bench", quick)
    r, fuel, s, m = f["round_trips"], f["fuel"], f["start"], f["memory"]
    return [
        (
            "apps: store query round trips from inside an app",
            f"{r['per_s']:,.0f} /s",
            f"the pinger fixture sending `type:task` again on each answer for {r['seconds']:.0f} s "
            f"({r['count']:,} round trips): host permission check, tantivy index on disk with "
            f"{r['entities']} tasks (IndexStore, no chain), answer written into the app's memory",
            "-",
        ),
        (
            "apps: fuel per simple call",
            f"{fuel['hello_init']} (init) / {fuel['pinger_delivery']} (one delivery)",
            "hello's init (one log, one set_timer); one event delivered to the pinger (alloc + "
            "on_message that sends a request); the limit per call is 10,000,000",
            "-",
        ),
        (
            "apps: app start time, p50",
            f"{s['compile_p50_us'] + s['start_p50_us']:.0f} µs",
            f"hello ({s['module_bytes']} bytes of wasm): validate {s['compile_p50_us']:.0f} µs + "
            f"instantiate and run init {s['start_p50_us']:.0f} µs, {s['runs']} runs",
            "-",
        ),
        (
            "apps: memory per idle instance",
            f"{m['per_instance_kib']:.0f} KiB",
            f"VmRSS growth over {m['instances']} hello instances in one host "
            f"({m['linear_memory_bytes'] // 1024} KiB of linear memory each)",
            "-",
        ),
    ]


def main():
    print("\n".join(bench_example.table(rows(quick="--quick" in sys.argv))))


if __name__ == "__main__":
    main()
