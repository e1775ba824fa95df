"""Write one scene of a shard set as media files, to try ``avloc localize`` on it.

Usage: python scripts/export_scene.py SHARDS INDEX OUT_DIR

Writes ``OUT_DIR/scene.png`` (the stored image), ``scene.wav`` (its audio), ``silence.wav``
(zeros, same length), ``offscreen.wav`` (the offscreen clip, when the shards store one) and
``scene.json`` (id, class, the sounding object's box as fractions of the image side).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from avloc.data.shards import ShardSet


def main(shards: str, index: int, out: str) -> None:
    data = ShardSet(shards)
    fields = [
        f for f in ("id", "image", "audio", "label", "box", "offscreen_audio") if f in data.fields
    ]
    row = {k: v[0] for k, v in data.read(np.array([index]), fields).items()}
    rate = int(data.attrs["sample_rate"])
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(row["image"]).save(folder / "scene.png")
    soundfile.write(folder / "scene.wav", row["audio"], rate)
    soundfile.write(folder / "silence.wav", np.zeros_like(row["audio"]), rate)
    if "offscreen_audio" in row:
        soundfile.write(folder / "offscreen.wav", row["offscreen_audio"], rate)
    names = list(data.class_names)
    info = {
        "id": str(row["id"]),
        "class": names[int(row["label"])] if "label" in row and names else None,
        "box": [round(float(x), 4) for x in row["box"]] if "box" in row else None,
    }
    (folder / "scene.json").write_text(json.dumps(info, indent=1))
    print(f"scene {info['id']} ({info['class']}), sounding object box {info['box']} -> {folder}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2])
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
