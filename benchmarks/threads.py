"""The digits model's training steps with 1 and with 2 intra-op threads (torch.set_num_threads), on a quiet
machine and beside one busy neighbour (a process spinning on one core).

    python benchmarks/threads.py [--steps 100] [--repeats 3]

Each figure is the median time of `--steps` training steps (batch 64, 1x8x8 inputs, the model of
specs/digits.yaml, AdamW) in a fresh process, interleaved. On a 2-core machine two threads share the
cores with the neighbour: each parallel op waits for its slower thread. `dtrain run` picks the threads
from the CPUs the process may use (declarative/training/threads.py); `trainer.num_threads: 1` is the
setting for a machine shared with other busy work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

STEPS = r"""
import sys, time, torch
from torch import nn
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
def step():
    optimizer.zero_grad(); nn.functional.cross_entropy(model(x), y).backward(); optimizer.step()
for _ in range(10): step()
begin = time.perf_counter()
for _ in range(int(sys.argv[2])): step()
print(time.perf_counter() - begin)
"""

# Busy on one core until this script ends (it checks now and then that its parent is still there).
SPIN = """
import os
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(100_000):
        pass
"""


def _steps(threads: int, steps: int) -> float:
    result = subprocess.run([sys.executable, "-c", STEPS, str(threads), str(steps)], capture_output=True, text=True,
                            timeout=600)
    return float(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times = {(n, busy): [] for busy in (False, True) for n in (1, 2)}
    for _ in range(args.repeats):
        for busy in (False, True):
            neighbour = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
            try:
                for threads in (1, 2):
                    times[(threads, busy)].append(_steps(threads, args.steps))
            finally:
                if neighbour is not None:
                    neighbour.kill()
                    neighbour.wait()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end; "
          f"{args.steps} steps, median of {args.repeats}, seconds")
    print("| threads | quiet | one busy neighbour |")
    print("|---|---|---|")
    for threads in (1, 2):
        print(f"| {threads} | {statistics.median(times[(threads, False)]):.2f} | "
              f"{statistics.median(times[(threads, True)]):.2f} |")


if __name__ == "__main__":
    main()
