"""What DDP costs per training step on the CPU: 2 processes x 1 thread against 1 process x 2 threads.

    python benchmarks/ddp_step.py [--repeats 3] [--batch 256] [--width 512]

Both sides train the same MLP (784 → width → width → 10, SGD) on the same 8,192 random samples with
the same global batch: one process takes `batch` samples a step on 2 threads; two processes (gloo,
`trainer.devices=2`) take `batch / 2` each on 1 thread, and all-reduce their gradients. Each side is
a real `dtrain run` command; a step's time is the difference between a 16-epoch and a 1-epoch run
divided by the steps in between, so start-up (imports, process launch, rendezvous) is left out.
Runs are interleaved and the medians reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLES = 8192
LONG = 16  # epochs of the long run; its difference to a 1-epoch run is what is timed

SPEC = """\
name: ddp-step
seed: 0
data:
  source: {{ArrayFile: {{path: data.npz}}}}
  batch_size: {batch}
  loader: memory
model:
  input: [784]
  layers:
    - Linear: {{out_features: {width}}}
    - ReLU
    - Linear: {{out_features: {width}}}
    - ReLU
    - Linear: {{out_features: 10}}
loss: CrossEntropyLoss
metrics: []
optimizer: {{SGD: {{lr: 0.01}}}}
trainer: {{accelerator: cpu, enable_progress_bar: false, enable_checkpointing: false, num_sanity_val_steps: 0}}
logger: false
"""


def timed_run(folder: Path, processes: int, threads: int, batch: int, epochs: int) -> float:
    """Wall seconds of one `dtrain run` of `epochs` epochs."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "declarative", "run", "spec.yaml", f"trainer.devices={processes}",
               f"data.batch_size={batch // processes}", f"trainer.max_epochs={epochs}"]
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="global batch (per step, over all processes)")
    parser.add_argument("--width", type=int, default=512)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="dtrain-ddp-bench-"))
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", inputs=rng.normal(size=(SAMPLES, 784)).astype(np.float32),
             targets=rng.integers(0, 10, SAMPLES))
    (folder / "spec.yaml").write_text(SPEC.format(batch=args.batch, width=args.width))
    steps = (LONG - 1) * SAMPLES // args.batch  # between the 1-epoch and the LONG-epoch run

    sides = {"1 process x 2 threads": (1, 2), "2 processes x 1 thread (DDP, gloo)": (2, 1)}
    per_step: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, (processes, threads) in sides.items():  # interleaved
            short = timed_run(folder, processes, threads, args.batch, 1)
            long = timed_run(folder, processes, threads, args.batch, LONG)
            per_step[name].append((long - short) / steps * 1000)

    print(f"global batch {args.batch}, MLP width {args.width}, {steps} steps timed, {args.repeats} repeats, "
          f"{os.cpu_count()} CPUs")
    medians = {name: statistics.median(values) for name, values in per_step.items()}
    for name, values in per_step.items():
        print(f"{name}: {medians[name]:.2f} ms/step (runs: {', '.join(f'{v:.2f}' for v in values)})")
    one, two = medians.values()
    print(f"DDP / single process time per step: {two / one:.2f}x")


if __name__ == "__main__":
    main()
