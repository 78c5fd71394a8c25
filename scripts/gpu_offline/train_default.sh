#!/usr/bin/env bash
# Train a default-model candidate on a GPU machine without network, in one call.
#
# Run from the repository root, with .device/ (made by scripts/gpu_offline/prepare.py)
# beside the code:
#
#   bash scripts/gpu_offline/train_default.sh [more train_default_model.py arguments]
#
# It installs the carried wheels into /tmp/site, checks that CUDA and the package import
# (a missing module here means .device/wheels lacks a wheel),
# then trains with scripts/train_default_model.py on the packed DSB2018 copy: a schedule
# planned to end within PLAN_MINUTES (a probe times the machine first), stopped for good at
# STOP_MINUTES, post-processing left to a later --tune-only run on any machine. The model
# file and the log go to $OUT (the lent machine's folder that comes back), else ./out.
# Later arguments override earlier ones, so "--width 16" or "--lr 1e-3" at the end win.
# DEVICE=cpu runs the same steps on a CPU (how the script was checked without a GPU).
set -euo pipefail

OUT=${OUT:-out}
DATA=${DATA:-.device/dsb2018}
WHEELS=${WHEELS:-.device/wheels}
DEVICE=${DEVICE:-cuda}
PLAN_MINUTES=${PLAN_MINUTES:-6}
STOP_MINUTES=${STOP_MINUTES:-7.5}
WORKERS=${WORKERS:-$(($(nproc) > 2 ? $(nproc) - 2 : 1))}
mkdir -p "$OUT"

if [ ! -d "$DATA" ]; then
    echo "no $DATA: run scripts/gpu_offline/prepare.py here and carry .device there" >&2
    exit 2
fi
if ls "$WHEELS"/*.whl > /dev/null 2>&1; then  # what the machine's image lacks
    python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

python3 - "$DEVICE" <<'EOF'
import sys

import torch

import napari_segkit.training  # noqa: F401  (every import the training needs)
from napari_segkit.kaggle import load_dataset  # noqa: F401

if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("CUDA is not available to torch " + torch.__version__)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
else:
    print(f"torch {torch.__version__}, device {sys.argv[1]}")
EOF

python3 scripts/train_default_model.py --data "$DATA" --out "$OUT/candidate.safetensors" \
    --device "$DEVICE" --num-workers "$WORKERS" --plan-minutes "$PLAN_MINUTES" \
    --minutes "$STOP_MINUTES" --no-tune --overwrite \
    --width 18 --loss dice+border_ce --patch-size 256 --batch-size 16 --steps-per-epoch 1000 \
    "$@" 2>&1 | tee "$OUT/train.log"
