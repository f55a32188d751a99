"""One training epoch of the Lightning article's MNIST MLP, three ways, on the same IDX files.

    python benchmarks/data_loading.py [--repeats 5] [--device cpu] [--threads 1]

- dtrain: specs/mnist_mlp.yaml through dtrain's own machinery (build_model, build_data, Trainer.fit
  for one epoch; no validation, no checkpoint, no logger, no progress bar);
- examples: the pytorch/examples MNIST loop: torchvision.datasets.MNIST with per-sample
  ToTensor + Normalize, a DataLoader as its main.py sets it up (batch 64, shuffle,
  num_workers=1, pin_memory on CUDA), loss.item() every 10 batches as its log_interval does;
- hand: a hand-written loop over one preloaded uint8 tensor: a permutation, x[idx],
  float / 255, normalize, forward, backward, step.

The same model (Flatten, Linear 784→128, ReLU, Linear 128→256, ReLU, Linear 256→10), Adam
lr 1e-3, batch size 64. The file set is MNIST-sized (60,000 1×28×28 uint8 training images,
written here in the IDX format by tests/idx.py). Runs are interleaved (one epoch of each, then
again) and the medians reported; setup (reading the files) is timed apart from the epoch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # dtrain itself, and the IDX writer the tests use

from idx import write_mnist  # noqa: E402

BATCH_SIZE = 64
MEAN, STD = 0.1307, 0.3081


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- the three contenders

def dtrain_epoch(root: Path, device: torch.device) -> tuple[float, float]:
    """(setup seconds, epoch seconds) of specs/mnist_mlp.yaml through dtrain's data and its spec-free Trainer."""
    from declarative.data import build_data
    from declarative.model.builder import build_model
    from declarative.spec.validate import load_spec
    from declarative.training.accelerators import select_accelerator
    from declarative.training.components import LOSSES, OPTIMIZERS
    from declarative.training.metrics import StageMetrics
    from declarative.training.precision import FullPrecision
    from declarative.training.settings import TrainerSettings
    from declarative.training.strategies import SingleDeviceStrategy
    from declarative.training.trainer import Trainer

    start = time.perf_counter()
    spec = load_spec(REPO / "specs" / "mnist_mlp.yaml", [
        f"data.source.MNIST.root={root}", "data.source.MNIST.download=false", f"trainer.accelerator={device.type}"])
    spec.data.val = None  # one training epoch, no validation
    strategy = SingleDeviceStrategy().configure(select_accelerator(device.type), [device.index or 0])
    model = build_model(spec)
    data = build_data(spec, strategy.root_device)
    settings = TrainerSettings(max_epochs=1, enable_progress_bar=False, num_sanity_val_steps=0)
    trainer = Trainer(settings, strategy=strategy, precision=FullPrecision(),
                      metrics={stage: StageMetrics(stage, {}) for stage in ("train", "val", "test")})
    model = trainer.setup_module(model)
    loss_fn = LOSSES.build_component(spec.loss, spec).to(strategy.root_device)
    optimizer = OPTIMIZERS.build_component(spec.optimizer, spec, params=model.parameters())
    data.test = None
    sync(device)
    setup = time.perf_counter() - start

    start = time.perf_counter()
    trainer.fit(model, loss_fn, optimizer, data)
    sync(device)
    assert trainer.global_step == len(data.train) == 938
    return setup, time.perf_counter() - start


def examples_epoch(root: Path, device: torch.device) -> tuple[float, float]:
    """(setup, epoch) of the pytorch/examples MNIST training loop."""
    from torchvision import datasets, transforms

    start = time.perf_counter()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    dataset = datasets.MNIST(str(root), train=True, download=False, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=1,
                                         pin_memory=device.type == "cuda")
    model = mlp().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    setup = time.perf_counter() - start

    start = time.perf_counter()
    model.train()
    for batch_idx, (data, target) in enumerate(loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
        if batch_idx % 10 == 0:  # log_interval
            loss.item()
    sync(device)
    return setup, time.perf_counter() - start


def hand_epoch(root: Path, device: torch.device) -> tuple[float, float]:
    """(setup, epoch) of a loop that slices one preloaded tensor."""
    from torchvision import datasets

    start = time.perf_counter()
    dataset = datasets.MNIST(str(root), train=True, download=False)
    x = dataset.data.unsqueeze(1).to(device)
    y = dataset.targets.to(device)
    model = mlp().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    setup = time.perf_counter() - start

    start = time.perf_counter()
    model.train()
    order = torch.randperm(len(x), device=device)
    for i in range(0, len(x), BATCH_SIZE):
        idx = order[i:i + BATCH_SIZE]
        inputs = (x[idx].float() / 255 - MEAN) / STD
        loss = nn.functional.cross_entropy(model(inputs), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return setup, time.perf_counter() - start


CONTENDERS = {"dtrain": dtrain_epoch, "examples": examples_epoch, "hand": hand_epoch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="epochs of each contender (interleaved)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_mnist(root, n_train=60_000, n_test=10_000)
        epochs: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        setups: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        for repeat in range(args.repeats):
            for name, run in CONTENDERS.items():
                torch.manual_seed(repeat)
                setup, epoch = run(root, device)
                setups[name].append(setup)
                epochs[name].append(epoch)
                print(f"  run {repeat + 1}: {name:9s} epoch {epoch:6.2f} s  (setup {setup:5.2f} s)", flush=True)

    median = {name: statistics.median(times) for name, times in epochs.items()}
    print(f"\ndevice {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved runs; medians:")
    print(f"| loop | epoch (median) | samples/s | setup (median) |\n|---|---|---|---|")
    for name in CONTENDERS:
        print(f"| {name} | {median[name]:.2f} s | {60_000 / median[name]:,.0f} | "
              f"{statistics.median(setups[name]):.2f} s |")
    print(f"\ndtrain throughput / examples: {median['examples'] / median['dtrain']:.2f}x (target >= 3x)")
    print(f"dtrain time / hand loop:      {median['dtrain'] / median['hand']:.3f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()
