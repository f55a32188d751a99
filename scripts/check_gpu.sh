#!/usr/bin/env bash
# On a CUDA machine: train with 16-mixed and bf16-mixed on one GPU, DDP over every GPU, and FSDP, and
# print what each run measured (wall time, test accuracy, peak GPU memory of process 0); then the
# callbacks and profiler that read the GPU, the finders on a real device, and the CUDA-only tests.
#
#   scripts/check_gpu.sh                        # specs/digits.yaml; the data is bundled
#   SPEC=specs/resnet18_cifar10.yaml scripts/check_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${SPEC:-specs/digits.yaml}
python=${PYTHON:-python3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

gpus=$("$python" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "$gpus" -lt 1 ]; then
  echo "no CUDA device here: nothing to check" >&2
  exit 1
fi
"$python" -c "import torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}')"

check() {  # name, then overrides
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  if ! "$python" -m declarative run "$spec" trainer.accelerator=cuda trainer.enable_progress_bar=false \
      "trainer.default_root_dir=$out/$name" "$@" > "$out/$name.log" 2>&1; then
    echo "$name: FAILED"; tail -5 "$out/$name.log"; return 0
  fi
  end=$(date +%s.%N)
  "$python" - "$out/$name" "$name" "$start" "$end" <<'PY'
import json, pathlib, sys
root, name, start, end = pathlib.Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
results = json.loads(next(root.glob("*/version_*/results.json")).read_text())
test = {k: round(v, 4) for k, v in results["test"].items() if not isinstance(v, list)}
print(f"{name}: {end - start:.1f} s wall, {results['epochs']} epochs, {results['global_step']} steps, "
      f"world size {results['world_size']}, {test}")
tuned = results.get("tuned")
if tuned:
    print(f"  tuned: {({k: v.get('applied', v.get('chosen')) for k, v in tuned.items()})}")
import csv
rows = list(csv.DictReader(open(next(root.glob("*/version_*/metrics.csv")))))
gpu = {k: v for row in rows for k, v in row.items() if v and ("DeviceStatsMonitor" in k or "per_sec" in k or "mfu" in k)}
if gpu:
    print("  last logged: " + ", ".join(f"{k.split('/')[-1]}={float(v):.4g}" for k, v in sorted(gpu.items())))
traces = list(root.glob("*/version_*/plugins/profile/*.pt.trace.json"))
if traces:
    print(f"  profiler trace: {traces[0].name} ({traces[0].stat().st_size} bytes)")
PY
}

check 32-true trainer.devices=1 trainer.precision=32-true
check 16-mixed trainer.devices=1 trainer.precision=16-mixed
check bf16-mixed trainer.devices=1 trainer.precision=bf16-mixed
if [ "$gpus" -ge 2 ]; then
  check "ddp-x$gpus" trainer.devices=-1 trainer.strategy=ddp
  check "ddp-x$gpus-bf16" trainer.devices=-1 trainer.strategy=ddp trainer.precision=bf16-mixed
  check "ddp-x$gpus-syncbn" trainer.devices=-1 trainer.strategy=ddp trainer.sync_batchnorm=true
  check "fsdp-x$gpus" trainer.devices=-1 trainer.strategy=fsdp
  check "fsdp-x$gpus-bf16" trainer.devices=-1 trainer.strategy=fsdp trainer.precision=bf16-mixed
else
  echo "one GPU: DDP and FSDP as one process each"
  check ddp-x1 trainer.devices=1 trainer.strategy=ddp
  check fsdp-x1-bf16 trainer.devices=1 trainer.strategy=fsdp trainer.precision=bf16-mixed
fi

check monitors trainer.devices=1 trainer.precision=bf16-mixed trainer.profiler=pytorch \
  "callbacks=[DeviceStatsMonitor, ThroughputMonitor]" trainer.log_every_n_steps=5
check finders trainer.devices=1 "callbacks=[LearningRateFinder, {BatchSizeFinder: {max_trials: 12}}]"
"$python" -m pytest -q -rs tests/test_data.py tests/test_loading.py tests/test_monitor_callbacks.py -k "cuda or device_stats"
