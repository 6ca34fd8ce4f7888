"""Running one of the project's benchmark examples for `make bench`: find its release binary,
run it with a bound on time, and return the JSON object it prints."""

import json
import os
import subprocess
import sys

# The benchmarks bound their own loops (well under a minute); this only catches a hang.
TIMEOUT_S = 180


def binary(name, env_var):
    """$ENV_VAR if set, else $CARGO_TARGET_DIR (or target)/release/examples/NAME."""
    if os.environ.get(env_var):
        return os.environ[env_var]
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    return os.path.abspath(os.path.join(target, "release", "examples", name))


def run(name, env_var, build_command, quick=False):
    """Runs the example once and returns its JSON object; exits with a clear message if the
    binary is missing or fails."""
    path = binary(name, env_var)
    if not os.path.exists(path):
        sys.exit(f"bench: {path} is missing; build it with `{build_command}`")
    args = [path] + (["--quick"] if quick else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed with status {done.returncode}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def table(rows):
    """The rows as a Markdown table (figure, value, measured on, ratio to baseline)."""
    header = ("figure", "value", "measured on", "ratio to baseline")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]

    def line(r):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return [line(header), separator] + [line(r) for r in rows]
