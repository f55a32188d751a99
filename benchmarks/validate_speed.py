"""`dtrain validate` as a pre-commit hook runs it: cold (the specs changed) and warm (unchanged), 1 and 20 specs.

    python benchmarks/validate_speed.py [--repeats 5]

Each figure is the wall time of the whole command in a fresh process (Python start-up included), interleaved
repeats, minimum and median (on a shared machine the minimum is the least disturbed). Cold: `--no-cache` (as
after editing every spec: nothing remembered); warm: the same specs again with the cache filled. The 20 specs
are copies of specs/digits.yaml under other names beside a copy of its data; "specs/*.yaml" is every example
spec of the repository. For scale it also times `python -c pass`, `dtrain --help` and `python -c "import torch"`.

Then, for the cold runs, what they import, which does not depend on the machine's load: the number of modules
(`len(sys.modules)` at the end) and, from `python -X importtime`, the cumulative import time of torch and of
the slow modules torch imports lazily (torchvision, torch._dynamo, sympy), where they were imported at all.
The targets: a changed spec validates cold in under 2.5 s, 20 unchanged ones warm in under 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLD_TARGET, WARM_TARGET = 2.5, 0.5
SLOW = ("torch", "torchvision", "torch._dynamo", "sympy")

# The CLI in-process, then how many modules it imported and which slow ones.
COUNTED = ("import sys\nfrom declarative.cli import main\nsys.argv = ['dtrain', *sys.argv[1:]]\n"
           "try:\n    main()\nexcept SystemExit:\n    pass\n"
           f"print(len(sys.modules), *[m for m in {SLOW!r} if m in sys.modules], file=sys.stderr)\n")


def _time(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 and "--help" not in command:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return elapsed


def _imports(args: list[str], env: dict[str, str]) -> tuple[int, dict[str, float]]:
    """Modules imported by `dtrain ARGS`, and the cumulative -X importtime seconds of the slow ones."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", COUNTED, *args], env=env,
                            capture_output=True, text=True, timeout=300)
    cumulative: dict[str, float] = {}
    for line in result.stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
        if found and found[2] in SLOW:
            cumulative[found[2]] = max(cumulative.get(found[2], 0.0), int(found[1]) / 1e6)
    count = next(int(line.split()[0]) for line in result.stderr.splitlines() if re.match(r"\d+( |$)", line))
    return count, cumulative


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
        examples = sorted(str(p) for p in (ROOT / "specs").glob("*.yaml"))
        env = {**os.environ, "DTRAIN_CACHE_DIR": str(folder / "cache"), "PYTHONPATH": str(ROOT)}
        dtrain = [sys.executable, "-m", "declarative"]
        cold = {
            "validate, 1 spec, cold": ["validate", "--no-cache", specs[0]],
            "validate, 20 specs, cold": ["validate", "--no-cache", *specs],
            f"validate specs/*.yaml ({len(examples)} specs), cold": ["validate", "--no-cache", *examples],
        }
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "dtrain --help": [*dtrain, "--help"],
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            **{name: [*dtrain, *arguments] for name, arguments in cold.items()},
            "validate, 1 spec, warm": [*dtrain, "validate", specs[0]],
            "validate, 20 specs, warm": [*dtrain, "validate", *specs],
        }
        _time([*dtrain, "validate", *specs], env)  # fills the cache for the warm runs
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):  # interleaved: a busy moment on the machine touches every figure alike
            for name, command in commands.items():
                times[name].append(_time(command, env))
        imports = {name: _imports(arguments, env) for name, arguments in cold.items()}
    import torch

    print(f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.2f} at the end; {args.repeats} interleaved runs, seconds")
    print("| command | min | median | all runs |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    print("\n| cold command | modules imported | " + " | ".join(f"{m} (cumulative import s)" for m in SLOW) + " |")
    print("|---|---|" + "---|" * len(SLOW))
    for name, (count, cumulative) in imports.items():
        print(f"| {name} | {count} | " + " | ".join(f"{cumulative[m]:.2f}" if m in cumulative else "not imported"
                                                  for m in SLOW) + " |")
    cold_1, warm_20 = min(times["validate, 1 spec, cold"]), min(times["validate, 20 specs, warm"])
    torch_import = min(times['python -c "import torch"'])
    print(f"\ncold validate of 1 spec takes {cold_1 / torch_import:.2f}x a bare `import torch` ({cold_1 - torch_import:+.2f} s), "
          f"20 specs {min(times['validate, 20 specs, cold']) / torch_import:.2f}x: read on a busy machine, those say more than seconds")
    print(f"cold validate of 1 spec: {cold_1:.2f} s, target < {COLD_TARGET} s: "
          f"{'PASS' if cold_1 < COLD_TARGET else 'FAIL'}")
    print(f"warm validate of 20 specs: {warm_20:.2f} s, target < {WARM_TARGET} s: "
          f"{'PASS' if warm_20 < WARM_TARGET else 'FAIL'}")


if __name__ == "__main__":
    main()
