"""Where a stage spends its time: one kretry side of a bench scenario under py-spy, summarised per function.

    .venv/bin/python -m bench.profile main|retry [--records N] [--out DIR]

runs ``py-spy record --gil --threads --format raw`` (collapsed stacks, only samples holding the GIL: Python's own
work, which is what a pure-Python stage is bound by) around the kretry side of the main-path or the 3-hop
retry-path benchmark, then prints the top functions of the stage threads by own time and by time inside them, each
as a share of all stage-thread samples. ``pip install py-spy`` first; py-spy needs ptrace (root, or
kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench import main_path, retry_path
from bench.common import create_topics, delete_topics, produce, quiet_kretry_logs, unique

STAGE_THREAD = "kretry-"  # kretry.worker names each stage's thread kretry-<topic>
TOP = 10


def _scenario(which: str, records: int) -> None:
    """The kretry side only, once: what the profiler attaches to."""
    quiet_kretry_logs()
    if which == "main":
        topic = unique("main")
        create_topics([topic])
        produce(topic, records)
        try:
            rate = main_path.kretry_rate(topic, records)
        finally:
            delete_topics([topic])
    else:
        rate = retry_path.kretry_rate(records)
    print(f"profile: {which} path, {records:,} records, {rate:,.0f} records/s", flush=True)


def summarise(raw: Path, top: int = TOP) -> str:
    """The stage threads' top functions from py-spy's raw (collapsed) output with ``--threads``: self and total
    shares of their samples."""
    own: Counter[str] = Counter()
    own_lines: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or STAGE_THREAD not in frames[0]:
            continue  # not a stage thread: the bench's own producing and watching
        count = int(count_text)
        total += count
        functions = [_function(f) for f in frames[1:]]
        if functions:
            own[functions[-1]] += count
            own_lines[frames[-1]] += count
        for name in set(functions):
            inside[name] += count
    if not total:
        return "no stage-thread samples"
    lines = [f"stage-thread samples holding the GIL: {total}", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in own.most_common(top)]
    lines += ["", "own time by line (C calls count to the line that makes them):"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in own_lines.most_common(top)]
    lines += ["", "time inside (own and callees):"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in inside.most_common(top + 8)]
    return "\n".join(lines)


def _function(frame: str) -> str:
    """``name (package/module.py)`` of a py-spy frame ``name (path/module.py:line)``: one entry per function; a C
    frame (``--native``) is its name alone."""
    name, _, place = frame.partition(" (")
    if not place:
        return name
    path = place.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(path).parts[-2:])})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["main", "retry"])
    parser.add_argument("--records", type=int)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--rate", type=int, default=1000, help="samples a second")
    parser.add_argument(
        "--native", action="store_true", help="C frames too: the garbage collector, librdkafka, confluent-kafka"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the process py-spy starts
    args = parser.parse_args(argv)
    records = args.records or (1_000_000 if args.which == "main" else retry_path.RECORDS)
    if args.child:
        _scenario(args.which, records)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / f"kretry-profile-{args.which}.txt"
    cmd = ["py-spy", "record", "--gil", "--threads", "--format", "raw", "-r", str(args.rate), "-o", str(raw), "--"]
    if args.native:
        cmd.insert(2, "--native")
    cmd += [sys.executable, "-m", "bench.profile", args.which, "--records", str(records), "--child"]
    subprocess.run(cmd, check=True)
    print(summarise(raw))
    print(f"raw profile: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
