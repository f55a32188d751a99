"""Per-sample augmentation of one batch: dtrain's pipeline against v2 sample by sample and v2 on the batch.

    python benchmarks/augmentation.py [--threads 1]

A batch of 256 CIFAR-sized images (3×32×32 uint8). Columns: dtrain's `Pipeline` (vectorised
where it has a vectorised form), the v2 transform called on each sample in turn (dtrain's path
for the others), and the v2 transform called once on the whole batch (fast, but one set of
parameters for every sample: not augmentation per sample). Milliseconds per batch, mean of 20.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from declarative.data.augment import Pipeline, _PerSample  # noqa: E402

TRANSFORMS = {
    "RandomCrop(32, padding=4)": v2.RandomCrop(32, padding=4),
    "RandomHorizontalFlip()": v2.RandomHorizontalFlip(),
    "RandomResizedCrop(32)": v2.RandomResizedCrop(32),
    "RandomRotation(10)": v2.RandomRotation(10),
}


def milliseconds(run, repeats: int = 20) -> float:
    run()  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    generator = torch.Generator()
    print("| transform | dtrain | v2 per sample | v2 on the batch (one draw) |\n|---|---|---|---|")
    for name, transform in TRANSFORMS.items():
        pipeline, per_sample = Pipeline([transform]), _PerSample(transform)
        print(f"| {name} | {milliseconds(lambda: pipeline(batch, generator)):.2f} ms "
              f"| {milliseconds(lambda: per_sample(batch, generator)):.2f} ms "
              f"| {milliseconds(lambda: transform(batch)):.2f} ms |", flush=True)


if __name__ == "__main__":
    main()
