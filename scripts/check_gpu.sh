#!/usr/bin/env bash
# On a CUDA machine: train with 16-mixed and bf16-mixed on one GPU, DDP over every GPU, and FSDP, and
# print what each run measured (wall time, test accuracy, peak GPU memory of process 0).
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
PY
}

check 32-true trainer.devices=1 trainer.precision=32-true
check 16-mixed trainer.devices=1 trainer.precision=16-mixed
check bf16-mixed trainer.devices=1 trainer.precision=bf16-mixed
if [ "$gpus" -ge 2 ]; then
  check "ddp-x$gpus" trainer.devices=-1 trainer.strategy=ddp
  check "ddp-x$gpus-bf16" trainer.devices=-1 trainer.strategy=ddp trainer.precision=bf16-mixed
  check "fsdp-x$gpus" trainer.devices=-1 trainer.strategy=fsdp
  check "fsdp-x$gpus-bf16" trainer.devices=-1 trainer.strategy=fsdp trainer.precision=bf16-mixed
else
  echo "one GPU: DDP and FSDP as one process each"
  check ddp-x1 trainer.devices=1 trainer.strategy=ddp
  check fsdp-x1-bf16 trainer.devices=1 trainer.strategy=fsdp trainer.precision=bf16-mixed
fi
