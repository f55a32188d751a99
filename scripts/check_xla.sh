#!/usr/bin/env bash
# Train specs/digits.yaml through torch_xla (PJRT), in 32-true and bf16-mixed, and print what it measured.
#
# No TPU is needed to check the XLA path: torch_xla runs on the host CPU with PJRT_DEVICE=CPU. On a TPU
# VM, run it with PJRT_DEVICE=TPU. The venv is separate because torch_xla pins its own torch
# (torch_xla 2.9 needs torch 2.9); set XLA_VENV to reuse one.
#
#   scripts/check_xla.sh                 # builds .venv-xla once (a few minutes), then trains twice
#   PJRT_DEVICE=TPU scripts/check_xla.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${XLA_VENV:-.venv-xla}
torch_version=${XLA_TORCH:-2.9.0}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch_xla" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "torch==$torch_version" "torch_xla==$torch_version" torchvision
fi
"$venv/bin/pip" install --quiet -e .
export PJRT_DEVICE=${PJRT_DEVICE:-CPU}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$venv/bin/python" -c "import torch, torch_xla, torch_xla.runtime as xr; print(f'torch {torch.__version__}, torch_xla {torch_xla.__version__}, PJRT_DEVICE={xr.device_type()}, {xr.global_runtime_device_count()} device(s)')"
for precision in 32-true bf16-mixed; do
  echo "== accelerator: tpu, precision: $precision"
  start=$(date +%s.%N)
  "$venv/bin/python" -m declarative run specs/digits.yaml trainer.accelerator=tpu "trainer.precision=$precision" \
    trainer.enable_progress_bar=false data.drop_last=true "trainer.default_root_dir=$out" | grep -E "data:|test/|val/"
  python3 -c "print(f'wall time: {$(date +%s.%N) - $start:.1f} s')"
done
