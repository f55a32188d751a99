"""`dtrain validate` as a pre-commit hook runs it: cold (the specs changed) and warm (unchanged), 1 and 20 specs.

    python benchmarks/validate_speed.py [--repeats 5]

Each figure is the wall time of the whole command in a fresh process (Python start-up included), the
median of interleaved repeats. Cold: `--no-cache` (as after editing every spec: nothing remembered);
warm: the same specs again with the cache filled. The 20 specs are copies of specs/digits.yaml under
other names beside a copy of its data. For scale it also times `python -c pass`, `dtrain --help` and
`python -c "import torch"`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _time(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0,) and "--help" not in command:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        shutil.copytree(ROOT / "specs" / "data", folder / "data")
        specs = []
        for i in range(20):
            specs.append(str(folder / f"spec_{i:02d}.yaml"))
            Path(specs[-1]).write_text((ROOT / "specs" / "digits.yaml").read_text().replace("name: digits", f"name: d{i}"))
        env = {**os.environ, "DTRAIN_CACHE_DIR": str(folder / "cache"), "PYTHONPATH": str(ROOT)}
        dtrain = [sys.executable, "-m", "declarative"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "dtrain --help": [*dtrain, "--help"],
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            "validate, 1 spec, cold": [*dtrain, "validate", "--no-cache", specs[0]],
            "validate, 1 spec, warm": [*dtrain, "validate", specs[0]],
            "validate, 20 specs, cold": [*dtrain, "validate", "--no-cache", *specs],
            "validate, 20 specs, warm": [*dtrain, "validate", *specs],
        }
        _time([*dtrain, "validate", *specs], env)  # fills the cache for the warm runs
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):  # interleaved: a busy moment on the machine touches every figure alike
            for name, command in commands.items():
                times[name].append(_time(command, env))
    import torch

    print(f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.2f} at the end; median of {args.repeats}")
    print("| command | median | all runs |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} s | {', '.join(f'{v:.2f}' for v in values)} |")


if __name__ == "__main__":
    main()
