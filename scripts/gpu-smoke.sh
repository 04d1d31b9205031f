#!/usr/bin/env bash
# The models end to end on a GPU node, through the CLI a researcher uses: train every predictor
# and editor for a few steps at the paper preset on CUDA (bf16), predict, and edit a split.
#
#     scripts/gpu-smoke.sh [WORKDIR] [STEPS]
#
# Backbones are random (`--random-backbone`, said in every output): this checks that the code
# runs on the device, not what the models learn. The data are the benchmark's synthetic scenes.
set -euo pipefail
work=${1:-$(mktemp -d)}
steps=${2:-20}
here=$(cd "$(dirname "$0")/.." && pwd)
gazelab() {
    local start=$SECONDS
    python3 -c 'import sys; from gazelab.cli import main; sys.argv[0] = "gazelab"; main()' "$@"
    echo "[gazelab $1 $2 $3: $((SECONDS - start)) s]"
}
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"

python3 - "$work/data" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from bench_models import write_scene_dataset
print("dataset:", write_scene_dataset(Path(sys.argv[1]), 12, (256, 192)))
EOF
common=(--data "$work/data" --preset paper --device cuda --steps "$steps" --no-progress)
for predictor in salgan salg_detector; do
    gazelab train predictor "$predictor" "${common[@]}" --random-backbone --out "$work/runs/$predictor"
done
predictor_ckpt="$work/runs/salgan/checkpoints/last.pt"
gazelab predict --ckpt "$predictor_ckpt" --images "$work/data/images" --out "$work/predicted" --device cuda
for editor in gazeshiftnet fgtransform sagim; do
    extra=()
    [[ $editor != gazeshiftnet ]] && extra=(--random-backbone)
    gazelab train editor "$editor" "${common[@]}" "${extra[@]}" --predictor "$predictor_ckpt" \
        --out "$work/runs/$editor"
    gazelab edit "$editor" --ckpt "$work/runs/$editor/checkpoints/last.pt" --data "$work/data" --split train \
        --out "$work/edits/$editor" --device cuda
done
echo "gpu smoke: every model trained on CUDA, predicted and edited; outputs in $work"
