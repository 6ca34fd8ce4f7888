"""`make bench`: what a user of `exo` feels, measured on the release binary.

Prints a table and writes it to target/bench/report.md. Each figure says what was measured,
on what data, and its ratio to a baseline where there is one. Nothing here fails on a number.
"""

import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_example  # noqa: E402
from bench_transport import rows as transport_rows  # noqa: E402
from bench_chain import rows as chain_rows  # noqa: E402
from bench_store import rows as store_rows  # noqa: E402
from bench_cluster import rows as cluster_rows  # noqa: E402
from bench_apps import rows as apps_rows  # noqa: E402

EXO = os.path.abspath(os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "exo"))
RUNS = 50


def run(args):
    """Runs a command, returns its wall-clock seconds. (Its max RSS would include the forked
    Python image, so memory is read from /proc of a running daemon instead.)"""
    start = time.perf_counter()
    status = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - start
    if status != 0:
        sys.exit(f"bench: {' '.join(args)} failed with status {status}")
    return elapsed


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def measure(args):
    return [run(args) * 1000 for _ in range(RUNS)]


def daemon_rss(node_dir):
    """Resident memory of an idle daemon with one cell, one second after start."""
    proc = subprocess.Popen([EXO, "-d", node_dir, "daemon"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    rss = 0
    with open(f"/proc/{proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    return rss


def main():
    rows = []
    true_times = measure(["/bin/true"])
    base_p50 = percentile(true_times, 50)
    with tempfile.TemporaryDirectory() as tmp:
        node = os.path.join(tmp, "node")
        init_times = []
        for i in range(RUNS):
            d = os.path.join(tmp, f"init{i}")
            init_times.append(run([EXO, "-d", d, "node", "init", "--name", "bench", "--listen", "127.0.0.1:3999"]) * 1000)
        run([EXO, "-d", node, "node", "init", "--name", "bench", "--listen", "127.0.0.1:3999"])
        run([EXO, "-d", node, "cell", "init", "--name", "home"])
        cases = [
            ("exo version", [EXO, "version"], "no node"),
            ("exo config validate", [EXO, "-d", node, "config", "validate"], "1 node, 1 cell"),
            ("exo cell node list", [EXO, "-d", node, "cell", "node", "list"], "1 node, 1 cell"),
        ]
        results = [("exo node init (keygen, 2 fsync'd files)", init_times, "fresh dir each run")]
        for name, args, data in cases:
            results.append((name, measure(args), data))
        for name, times, data in results:
            p50 = percentile(times, 50)
            rows.append((
                f"{name}: latency p50 / p95 / p99",
                f"{p50:.2f} / {percentile(times, 95):.2f} / {percentile(times, 99):.2f} ms",
                f"{RUNS} runs, {data}",
                f"{p50 / base_p50:.1f}x /bin/true ({base_p50:.2f} ms)",
            ))
        rows.append(("exo daemon: idle resident memory", f"{daemon_rss(node) / 1024:.1f} MiB", "1 cell, 1 s after start", "-"))
    rows += transport_rows()
    rows += chain_rows()
    rows += store_rows()
    rows += cluster_rows()
    rows += apps_rows()
    size = os.path.getsize(EXO)
    rows.append(("release binary size", f"{size / 1024 / 1024:.2f} MiB", f"{platform.machine()} target/release/exo", "-"))

    lines = bench_example.table(rows)
    cpu = platform.processor() or platform.machine()
    report = "\n".join([
        "# exo bench",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}. Release build.",
        "",
        *lines,
        "",
    ])
    print(report)
    os.makedirs("target/bench", exist_ok=True)
    with open("target/bench/report.md", "w") as out:
        out.write(report)
    print("written to target/bench/report.md")


if __name__ == "__main__":
    main()
