"""Forward-pass overhead of a dtrain model against the same nn.Sequential.

A 50-layer MLP (Linear + ReLU pairs, width 256) built by dtrain from a spec, and an nn.Sequential
holding the very same modules (same weights). Runs are interleaved (dtrain, Sequential, dtrain, ...)
so that machine noise hits both alike; the figure is the ratio of the medians. CPU, inference mode.

    python benchmarks/model_forward.py [--batch 64] [--width 256] [--layers 50] [--runs 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

SPEC = """\
name: bench
data:
  source: {{ArrayFile: {{path: unused.npz}}}}
loss: CrossEntropyLoss
optimizer: {{SGD: {{lr: 0.1}}}}
model:
  input: [{width}]
  layers:
{layers}
"""


def dtrain_mlp(width: int, layers: int) -> nn.Module:
    from declarative.model.builder import build_model
    from declarative.spec.validate import load_spec

    body = "".join(f"    - Linear: {{out_features: {width}}}\n    - ReLU\n" for _ in range(layers // 2))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(SPEC.format(width=width, layers=body))
        return build_model(load_spec(path))


def timed(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ours = dtrain_mlp(args.width, args.layers).eval()
    sequential = nn.Sequential(*ours.layers).eval()  # the same modules, so the same weights
    x = torch.randn(args.batch, args.width)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), sequential(x))
        for _ in range(20):  # warm-up
            ours(x), sequential(x)
        a, b = [], []
        for _ in range(args.runs):
            a.append(timed(ours, x))
            b.append(timed(sequential, x))
    mine, theirs = statistics.median(a), statistics.median(b)
    print(f"{args.layers} layers, width {args.width}, batch {args.batch}, {args.threads} thread(s), {args.runs} "
          f"interleaved runs")
    print(f"dtrain SpecModel: {mine * 1e6:9.1f} us (median)")
    print(f"nn.Sequential:    {theirs * 1e6:9.1f} us (median)")
    print(f"ratio:            {mine / theirs:9.3f}")


if __name__ == "__main__":
    main()
