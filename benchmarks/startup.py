"""Start-up time of ``import imagerag_sdk`` and of ``imagerag --help`` / ``--version`` / ``plugins``,
against the bare interpreter measured in the same run.

Each case is a fresh ``python`` process; the cases (and, with ``--base``, the same cases on an older
copy of the sources) run interleaved in shuffled order, ``--runs`` rounds, so a change in the
machine's load hits them all alike. Printed per case: the median wall time, its ratio to the
bare interpreter's median, and the heavy modules (and plugin modules) the process had imported at
exit, from one extra run.

    python benchmarks/startup.py [--runs 15] [--base 792036c]

``--base REV`` exports ``src/`` of that commit (``git archive``) to a temporary folder and runs the
same cases with it first on PYTHONPATH (the plugins stay the working tree's), side by side.
The ``imagerag`` cases run ``from imagerag_sdk.cli import main; main()``, which is what the
console script does.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ["numpy", "PIL", "pydantic", "pluggy", "rich", "yaml", "click", "torch", "transformers"]
CLI = "import sys; from imagerag_sdk.cli import main; sys.exit(main())"
CASES = {
    "python -c pass": ["-c", "pass"],
    "import imagerag_sdk": ["-c", "import imagerag_sdk"],
    "imagerag --help": ["-c", CLI, "--help"],
    "imagerag --version": ["-c", CLI, "--version"],
    "imagerag plugins": ["-c", CLI, "plugins"],
}
PROBE = ("import atexit, sys\n"
         "def _report():\n"
         f"    heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
         "    plugins = {m.split('.')[0] for m in sys.modules if m.startswith('imagerag_')\n"
         "               and not m.startswith('imagerag_sdk')}\n"
         "    sys.stderr.write('\\nPROBE ' + ','.join(heavy) + ' | ' + str(len(plugins)) + '\\n')\n"
         "atexit.register(_report)\n")


def env_for(src: Path) -> dict[str, str]:
    """This environment with ``src`` first on PYTHONPATH instead of the working tree's ``src``."""
    own = str(ROOT / "src")
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != own]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *rest]), "COLUMNS": "200"}


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - start


def probe(args: list[str], env: dict[str, str]) -> str:
    """Heavy modules and the number of plugin packages imported by the end of the process."""
    code = PROBE + (args[1] if args[0] == "-c" else "")
    out = subprocess.run([sys.executable, "-c", code, *args[2:]], env=env, capture_output=True, text=True)
    line = [x for x in out.stderr.splitlines() if x.startswith("PROBE ")][-1]
    heavy, plugins = line[len("PROBE "):].split(" | ")
    return f"{heavy or '-'}; plugins {plugins}"


def export(rev: str, into: Path) -> Path:
    """``src/`` of ``rev`` (git archive) under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
                             capture_output=True, check=True).stdout
    tar = into / "src.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="Rounds; each runs every case once.")
    parser.add_argument("--base", help="Also run the cases on src/ of this git revision, side by side.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the per-round shuffle.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        trees = {"now": ROOT / "src"}
        if args.base:
            trees = {args.base: export(args.base, Path(tmp)), **trees}
        envs = {tree: env_for(src) for tree, src in trees.items()}
        jobs = [("-", "python -c pass")] + [(tree, case) for tree in trees for case in CASES
                                            if case != "python -c pass"]
        times: dict[tuple[str, str], list[float]] = {job: [] for job in jobs}
        load_before = os.getloadavg()
        for job in jobs:  # warm the file cache and the bytecode caches; not counted
            timed(CASES[job[1]], envs[job[0] if job[0] != "-" else "now"])
        rng = random.Random(args.seed)
        for _ in range(args.runs):
            rng.shuffle(jobs)
            for tree, case in jobs:
                times[(tree, case)].append(timed(CASES[case], envs[tree if tree != "-" else "now"]))
        load_after = os.getloadavg()
        bare = statistics.median(times[("-", "python -c pass")])
        print(f"{args.runs} interleaved rounds; load average {load_before[0]:.2f} before, "
              f"{load_after[0]:.2f} after; bare interpreter median {bare * 1000:.1f} ms\n")
        print(f"| case | {' | '.join(f'{tree}: ms (× bare)' for tree in trees)} | "
              f"{' | '.join(f'{tree}: heavy modules; plugins imported' for tree in trees)} |")
        print("|---" * (1 + 2 * len(trees)) + "|")
        for case in CASES:
            keys = [("-", case)] if case == "python -c pass" else [(tree, case) for tree in trees]
            cells = []
            for key in keys:
                median = statistics.median(times[key])
                cells.append(f"{median * 1000:.0f} ({median / bare:.1f}×)")
            probes = [probe(CASES[case], envs[k[0] if k[0] != "-" else "now"]) for k in keys]
            if len(keys) < len(trees):
                cells, probes = cells * len(trees), probes * len(trees)
            print(f"| `{case}` | {' | '.join(cells)} | {' | '.join(probes)} |")


if __name__ == "__main__":
    main()
