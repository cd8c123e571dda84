#!/usr/bin/env bash
# One-GPU DDS benchmark: BENCHMARKS.md rows for 256² paper mode (two config-f generators + VGG16), seeds
# optimised together at batch 1 / 8 / 32 / 100: seed-it/s, peak memory (XLA's memory analysis and the
# allocator's peak), compile time, GFLOP per seed-iteration. Seeded random weights, nothing downloaded.
# Budget: <= 5 min on one H200 (configurations that would start after 270 s are printed as skipped).
#
# Fresh machine (from the repository root; keep jax at the version the CPU venv pins, the CUDA plugin
# must match it; use jax[cuda13] on a CUDA-13 driver):
#   python -m venv .venv && . .venv/bin/activate
#   pip install -e . && pip install "jax[cuda12]==$(python -c 'import jax; print(jax.__version__)')"
#   python -c "import jax; print(jax.devices())"      # must list a CudaDevice
#   bash bench/gpu.sh                                 # float32 (parity default), then tf32 and bf16 at 100
#   bash bench/gpu.sh --smoke                         # CPU check of this script: 64², batch 1/2, < 5 min
#
# Extra arguments after the mode go to bench/bench_dds.py (e.g. --remat=none to compare).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--smoke" ]]; then
  shift
  # CPU, tiny: 64² generators (VGG16 still sees 256² images, as the released code up-samples), 1 iteration.
  JAX_PLATFORMS=cpu python bench/bench_dds.py --size=64 --backbone=vgg16 --batches=1,2 --chunk=1 \
    --repeats=1 --precisions=float32 "$@"
  exit 0
fi

export XLA_PYTHON_CLIENT_PREALLOCATE=false   # so the allocator's peak is this program's, not a reservation
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
date -u +"# %Y-%m-%d %H:%M UTC"
# float32 rows at every batch, then the accelerator precisions at batch 100; one process, so the
# configurations that would start after 220 s are skipped (compiles dominate: ~6 of them).
python bench/bench_dds.py --size=256 --backbone=vgg16 --batches=1,8,32,100 --chunk=5 --repeats=2 \
  --precisions=float32,tf32,bf16 --other_batches=100 --time_budget=220 "$@"
