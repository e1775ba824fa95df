#!/usr/bin/env bash
# The main job on the built-in synthetic data: prepare scenes -> pretrain the visual trunk on
# synthetic objects (the synthetic world's ImageNet) -> train SSL-SaN -> evaluate it with
# positive, silence, noise and offscreen audio and print a verdict -> localize one test scene
# with its own audio, with silence and with an offscreen sound.
# Usage: scripts/quickstart.sh [OUT_DIR] [avloc train options]   (backend: KERAS_BACKEND,
# default torch); e.g. scripts/quickstart.sh runs/quickstart-seed1 --set seed=1 trains seed 1
# (scripts/quickstart_seeds.py runs five seeds and writes docs/results/quickstart-seeds.md).
# The verdict block says which of the quickstart's targets the model meets (README, "What the
# quickstart prints"); `avloc eval --verdict` alone exits 3 when one is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=${KERAS_BACKEND:-torch} TF_CPP_MIN_LOG_LEVEL=3
out=${1:-runs/quickstart}
shift $(($# > 0 ? 1 : 0))
avloc prepare synthetic --out data/synthetic --train 1200 --test 200 --seed 0
avloc pretrain recipes/synthetic/visual_trunk.toml --out data/synthetic/visual_trunk.pth
avloc train recipes/quickstart.toml --run-dir "$out" "$@"
status=0
avloc eval --dataset synthetic --run "$out" --control shuffled --out "$out/eval" --verdict \
    || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"

# One test scene, three sounds: its own audio, silence, and the sound of an absent class.
python3 scripts/export_scene.py data/synthetic/test 0 "$out/example"
for sound in scene silence offscreen; do
    avloc localize "$out/example/scene.png" "$out/example/$sound.wav" --run "$out" --raw \
        -o "$out/example/heatmap_$sound.png" --json > "$out/example/heatmap_$sound.json"
    python3 - "$out/example" "$sound" <<'PY'
import json, sys
import numpy as np
folder, sound = sys.argv[1:]
r = json.load(open(f"{folder}/heatmap_{sound}.json"))
x1, y1, x2, y2 = json.load(open(f"{folder}/scene.json"))["box"]
heat = np.load(f"{folder}/heatmap_{sound}.npy")
h, w = heat.shape
box = np.zeros_like(heat, bool)
box[int(y1 * h) : int(np.ceil(y2 * h)), int(x1 * w) : int(np.ceil(x2 * w))] = True
above = heat > r["uth"]
line = f"  {sound + '.wav':14s} max {r['max_score']:.3f} vs Uth {r['uth']:.3f}: "
if r["sounding"]:
    line += (f"sounding; the region above Uth covers {100 * above[box].mean():.0f} % of the "
             f"sounding object and {100 * above.mean():.0f} % of the image")
else:
    line += "abstains: nothing visible is sounding"
print(line)
PY
done
echo "Quickstart finished: model and logs in $out, evaluation in $out/eval, example heatmaps in"
echo "$out/example (data in data/synthetic)."
