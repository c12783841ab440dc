#!/usr/bin/env bash
# Every check that needs a GPU, as one time-boxed run that fits a short loan of a GPU machine:
#
#     bash bench/gpu_check.sh OUT [SECONDS]          (make gpu-check OUT=... runs it too)
#
# Run it in the repository root; python3 (or $PYTHON) must hold a CUDA build of torch. On an
# offline machine, first fill .whl/ here (the packages the GPU tests and benchmarks import
# beyond torch, numpy, pytest, safetensors, imageio, scipy, tensorboard; about 8 MB):
#
#     ../shared/tools/offline-wheels trimesh PyMCubes plyfile gsplat nerfacc
#
# and the script installs them into a private folder before anything else. Leave out
# imageio-ffmpeg (68 MB): with it the copied tree goes over the 64 MiB a device call carries, and
# without it a video is written as a GIF, and no GPU test or benchmark reads an MP4.
#
# Steps, in order of what they prove, each under its own time limit and never past SECONDS
# in all (default 540, inside a 10-minute call); a step that fails or runs out of time does
# not stop the next. gsplat and nerfacc compile their CUDA code on first use, so that build
# starts in the background at once, beside ours.
#   build   our CPU + CUDA kernels for the visible GPU (render3d build --require-cuda)
#   tests   pytest -m cuda: native = twin on the GPU, the GPU training steps, NCCL (2+ GPUs)
#   train   bench/train.py at 64/128/256 px (VolumeGAN, the official sizes), 256 px again in bf16,
#           with TF32, and at batch 32 in passes of 8 (batch_gpu)
#   volume  bench/volume.py: compositing vs the twin and nerfacc, march counts vs nerfacc
#   splat   bench/splat.py: rasterization vs gsplat
# OUT gets summary.json (each step's exit status and seconds; 124 = out of time),
# gpu-check.log (everything printed), peers-build.log, and train_cuda.json, volume_cuda.json
# and splat_cuda.json: copy those three into bench/results/.
#
# Rehearsal without a GPU (the plumbing, the CUDA build and link, test collection, the peers'
# builds): a Python 3.12 venv holding a CUDA build of torch plus the packages above, then
#     RENDER3D_FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 CUDA_HOME=/usr/local/cuda-13.0 \
#       PYTHON=venv/bin/python bash bench/gpu_check.sh OUT 900
# builds and loads our CUDA kernels, selects the CUDA tests (they skip) and stops the
# benchmarks at "no GPU is visible". Run on 2026-12-04 with torch 2.13.0+cu130 and with
# 2.11.0+cu130 (the GPU machines' torch): all as expected, and gsplat 1.5.3 compiled against
# CUDA 13.0 (362 s on 2 cores, sm_90). The whole CPU suite under 2.11 passes too.
set -uo pipefail

out=${1:?usage: bash bench/gpu_check.sh OUT [SECONDS]}
budget=${2:-540}
py=${PYTHON:-python3}
mkdir -p "$out"
out=$(cd "$out" && pwd)
log=$out/gpu-check.log
: >"$log"
start=$SECONDS
steps=()

if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/render3d-site \
    .whl/*.whl >>"$log" 2>&1 || echo "gpu-check: installing .whl/ failed (see above)" >>"$log"
  export PYTHONPATH=/tmp/render3d-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  arch=$("$py" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())" 2>>"$log") \
    && export TORCH_CUDA_ARCH_LIST=$arch
fi

summary() {
  {
    printf '{\n  "budget_s": %s,\n  "elapsed_s": %s,\n  "steps": [' "$budget" $((SECONDS - start))
    local sep=""
    for s in "${steps[@]}"; do printf '%s\n    %s' "$sep" "$s"; sep=","; done
    printf '\n  ]\n}\n'
  } >"$out/summary.json"
}

# step NAME LIMIT COMMAND...: run under min(LIMIT, what is left of the budget)
step() {
  local name=$1 limit=$2; shift 2
  local left=$((budget - (SECONDS - start)))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 15 ]; then
    steps+=("{\"step\": \"$name\", \"rc\": null, \"seconds\": 0, \"note\": \"skipped: budget spent\"}")
    summary
    return
  fi
  echo "=== $name (limit ${limit} s): $*" | tee -a "$log"
  local t0=$SECONDS
  timeout -k 10 -s INT "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
  steps+=("{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - t0))}")
  summary
}

{
  nvidia-smi -L 2>&1 || true
  "$py" -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.is_available())"
  echo "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-}"
  git rev-parse HEAD 2>/dev/null || true
} >>"$log" 2>&1

# The peers' CUDA extensions (a few minutes each), built while ours builds; the benchmarks
# then find them in torch's extension cache (or wait for this build to finish).
(MAX_JOBS=8 timeout -k 10 "$budget" "$py" -c "
import time
for name in ('gsplat', 'nerfacc'):
    started = time.time()
    try:
        backend = __import__(name + '.cuda._backend', fromlist=['_C'])   # importing it builds it
        print(name, 'ready' if backend._C is not None else 'NOT built', round(time.time() - started), 's', flush=True)
    except Exception as error:
        print(name, 'failed:', type(error).__name__, error, flush=True)
" >"$out/peers-build.log" 2>&1 &)

step build 300 "$py" -m render3d build --require-cuda
step tests 240 "$py" -m pytest -m cuda -v -p no:cacheprovider --ignore-glob='tests/test_viewer*' tests
step train 240 "$py" bench/train.py --device cuda --sizes 64 128 256 --bf16-sizes 256 --tf32-sizes 256 \
    --passes-sizes 256 --out "$out"
step volume 150 "$py" bench/volume.py --device cuda --out "$out"
step splat 240 "$py" bench/splat.py --device cuda --out "$out"
summary
echo "gpu-check: $((SECONDS - start)) s; results in $out"
