"""`dtrain run specs/digits.yaml` against a plain PyTorch script that trains the same model on the same data:
how much time each spends outside the training loop.

    python benchmarks/startup.py [--repeats 3] [--epochs 15]

Both run in fresh processes, interleaved, on the CPU with torch's default threads (dtrain's choice is the
CPUs the process may use, the same on a machine without limits); dtrain through its own entry point, as
the `dtrain` command runs. `--epochs` shortens both runs alike for a quick look; the split outside
training does not depend on it. Each process reports its split: imports (from interpreter start-up, with
the modules of the stages dtrain imports lazily), planning (for dtrain everything else outside the
stages below: the command line, validation, the model's plan and build, the set-up, printing), data
(read, split, transforms), training (the epochs with their validation, checkpoints and the test) and
writing (run folder, logs, results). Wall time also holds process start and exit. The plain script does what a careful hand-written loop does for the spec: the
same seeded splits of digits.npz, the same transforms, model, AdamW + OneCycleLR per step, 15 epochs
with validation each epoch, the best checkpoint by val accuracy and early stopping on val loss, a test
of the best weights, and a results file. The figure that matters is wall time minus training: the target
is that dtrain's is at most 1 s more than the plain script's. Each process also reports how many modules it
imported and which of the slow ones (torchvision, torch._dynamo, sympy, tensorboard), which the machine's
load does not change.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# `dtrain run SPEC` through the command's own entry point, its stages timed by wrapping the functions the run
# calls; the figures are printed as JSON when the command exits (its exit handlers run).
DTRAIN = r"""
import atexit, json, sys, time
started = time.perf_counter()
import torch
import declarative.assembly.build, declarative.cli, declarative.data, declarative.entry, declarative.model.builder, declarative.run
from declarative.training.run_dir import RunDir
from declarative.training.trainer import Trainer
spent = dict.fromkeys(("imports", "planning", "data", "training", "writing"), 0.0)
timing = []  # the stage being timed: a timed call inside another (build_data inside data_for_plan) counts once

def timed(owner, name, stage):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        if timing:
            return original(*args, **kwargs)
        timing.append(stage)
        begin = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - begin
            timing.pop()
    setattr(owner, name, wrapper)

for owner, name, stage in [(declarative.assembly.build, "data_for_plan", "data"), (declarative.data, "build_data", "data"),
                           (Trainer, "fit", "training"), (Trainer, "test", "training"), (Trainer, "finalize", "writing"),
                           (declarative.run, "_result", "writing"), (RunDir, "create", "writing")]:
    timed(owner, name, stage)
after_imports = time.perf_counter()
spent["imports"] = after_imports - started  # with the data stage's modules (torchvision's transforms), which wrapping build_data imports

def report():
    work = time.perf_counter() - after_imports
    # the rest: the command line, validation, planning and building the model, the set-up, printing
    spent["planning"] = work - spent["data"] - spent["training"] - spent["writing"]
    spent["modules"] = len(sys.modules)
    spent["slow"] = [m for m in ("torchvision", "torch._dynamo", "sympy", "tensorboard") if m in sys.modules]
    print(json.dumps(spent), flush=True)

atexit.register(report)
sys.argv = ["dtrain", "run", sys.argv[1], "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
            f"trainer.max_epochs={sys.argv[2]}"]
declarative.entry.main()
"""

PLAIN = r"""
import json, math, sys, time
started = time.perf_counter()
import numpy as np
import torch
from torch import nn
spent = {"imports": time.perf_counter() - started}

begin = time.perf_counter()
torch.manual_seed(7)
arrays = np.load(sys.argv[1])
x = torch.from_numpy(arrays["inputs"]).float()
x = (x - 4.88) / 6.02
y = torch.from_numpy(arrays["targets"])
order = torch.randperm(len(x), generator=torch.Generator().manual_seed(7))
n_test = int(0.2 * len(x)); n_val = int(0.1 * (len(x) - n_test))
test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
spent["data"] = time.perf_counter() - begin

begin = time.perf_counter()
model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
epochs, batch = int(sys.argv[2]), 64
steps = epochs * math.ceil(len(train) / batch)
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
loss_fn = nn.CrossEntropyLoss()
spent["planning"] = time.perf_counter() - begin

def evaluate(index):
    model.eval()
    with torch.no_grad():
        out = model(x[index])
        return loss_fn(out, y[index]).item(), (out.argmax(1) == y[index]).float().mean().item()

begin = time.perf_counter()
best_acc, best_loss, waited, saving = -1.0, math.inf, 0, 0.0
for epoch in range(epochs):
    model.train()
    for batch_index in torch.randperm(len(train)).split(batch):
        index = train[batch_index]
        optimizer.zero_grad()
        loss = loss_fn(model(x[index]), y[index])
        loss.backward()
        optimizer.step()
        scheduler.step()
    val_loss, val_acc = evaluate(val)
    saved = time.perf_counter()
    if val_acc > best_acc:
        best_acc = val_acc
        torch.save(model.state_dict(), "best.pt")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, "last.pt")
    saving += time.perf_counter() - saved
    if val_loss < best_loss:
        best_loss, waited = val_loss, 0
    else:
        waited += 1
        if waited >= 5:
            break
model.load_state_dict(torch.load("best.pt", weights_only=True))
test_loss, test_acc = evaluate(test)
spent["training"] = time.perf_counter() - begin

begin = time.perf_counter()
with open("results.json", "w") as file:
    json.dump({"val/accuracy": best_acc, "test/accuracy": test_acc, "epochs": epoch + 1}, file)
spent["writing"] = time.perf_counter() - begin
spent["modules"] = len(sys.modules)
spent["slow"] = [m for m in ("torchvision", "torch._dynamo", "sympy", "tensorboard") if m in sys.modules]
print(json.dumps(spent))
"""

STAGES = ("imports", "planning", "data", "training", "writing")
TARGET = 1.0  # s more than the plain script, outside training


def _run(code: str, argument: str, epochs: int, cwd: Path) -> dict:
    begin = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, argument, str(epochs)], capture_output=True, text=True,
                            cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=1200)
    wall = time.perf_counter() - begin
    if result.returncode != 0:
        sys.exit(result.stderr)
    spent = json.loads(result.stdout.strip().splitlines()[-1])
    return {**{k: spent.get(k, 0.0) for k in STAGES}, "wall": wall, "modules": spent["modules"], "slow": spent["slow"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    spec, data = ROOT / "specs" / "digits.yaml", ROOT / "specs" / "data" / "digits.npz"
    rows: dict[str, list[dict]] = {"dtrain run": [], "plain PyTorch": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):  # interleaved
            rows["dtrain run"].append(_run(DTRAIN, str(spec), args.epochs, Path(folder)))
            rows["plain PyTorch"].append(_run(PLAIN, str(data), args.epochs, Path(folder)))
    import torch

    print(f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.2f} at the end; {args.epochs} epochs; minimum of {args.repeats} "
          "interleaved runs per column (median in brackets), seconds")
    print("| | wall | " + " | ".join(STAGES) + " | outside training (wall − training) | modules | slow modules |")
    print("|---|---|" + "---|" * len(STAGES) + "---|---|---|")
    outside = {}
    for name, runs in rows.items():
        figures = {k: (min(r[k] for r in runs), statistics.median(r[k] for r in runs)) for k in (*STAGES, "wall")}
        spans = [r["wall"] - r["training"] for r in runs]
        outside[name] = min(spans)
        print(f"| {name} | " + " | ".join(f"{figures[k][0]:.2f} ({figures[k][1]:.2f})" for k in ("wall", *STAGES))
              + f" | {min(spans):.2f} ({statistics.median(spans):.2f}) | {runs[-1]['modules']} | "
              + (", ".join(runs[-1]["slow"]) or "none") + " |")
    extra = outside["dtrain run"] - outside["plain PyTorch"]
    print(f"\ndtrain spends {extra:+.2f} s more outside the training loop (minimums); target <= +{TARGET:.1f} s: "
          f"{'PASS' if extra <= TARGET else 'FAIL'}")


if __name__ == "__main__":
    main()
