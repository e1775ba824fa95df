"""Round trips of the other annotated sources of ``avloc prepare`` on tiny fake corpora in the
public layouts: Flickr-SoundNet (the annotators' consensus), IS3 (pairs sharing an image, masks),
AVSBench S4 (frames, masks, whole clips) and a generic manifest (pixel boxes, a video's time,
negatives).

Each test writes the media (JPEGs, PNGs, WAVs with PIL/soundfile; MP4s with PyAV) and the
annotations in the corpus's own format, prepares them, and checks what the shards hold against
what was written: the frame at the right timestamp, 16 kHz audio of the right length cut at
the right place, boxes converted exactly as docs/protocol.md and docs/formats.md say.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakemedia import dominant_frequency, frame_pattern, read_frame_pattern, write_video
from PIL import Image
from prepare_harness import RATE, rows, run, tone, write_jpeg, write_png, write_wav

from avloc.data.prepare import read_report
from avloc.data.shards import read_info
from avloc.metrics import gt_flickr

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

# --------------------------------------------------------------------------------------------
# Flickr-SoundNet
# --------------------------------------------------------------------------------------------


def _flickr_xml(boxes: list[list[int]], named: bool = True) -> str:
    parts = []
    for n, (x1, y1, x2, y2) in enumerate(boxes):
        if named:
            inner = (
                f"<annotator>{n}</annotator><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                f"<xmax>{x2}</xmax><ymax>{y2}</ymax>"
            )
        else:
            inner = f"<id>{n}</id><a>{x1}</a><b>{y1}</b><c>{x2}</c><d>{y2}</d>"
        parts.append(f"<object><bbox>{inner}</bbox></object>")
    return f"<annotation><filename>x.jpg</filename>{''.join(parts)}</annotation>"


FLICKR = {
    "1001": [[100, 20, 200, 180], [96, 30, 210, 190], [0, 0, 256, 256]],
    "1002": [[13, 77, 129, 255]],
    "1003": [[10, 10, 300, 100]],  # outside the 256 px frame: reported
}


def test_flickr_boxes_give_the_reference_consensus(tmp_path):
    root = tmp_path / "flickr"
    (root / "Annotations").mkdir(parents=True)
    for n, (name, boxes) in enumerate(FLICKR.items()):
        (root / "Annotations" / f"{name}.xml").write_text(_flickr_xml(boxes, named=n != 1))
        write_jpeg(root / "frames" / f"{name}.jpg", frame_pattern(n, 64, 64))
        write_wav(root / "audio" / f"{name}.wav", tone(300 + 100 * n, 5.0))
    out = tmp_path / "out"
    result = run("flickr", out, root=root)
    assert result.written == 2
    assert [(s.id, Path(s.file).name) for s in result.skipped] == [("1003", "1003.xml")]
    assert "outside the image" in result.skipped[0].reason
    info = read_info(result.shards[0])
    assert info.attrs["ground_truth"] == "consensus"
    assert "offscreen_audio" not in info.fields  # no class labels: no honest offscreen pool
    data = rows(out)
    assert data["boxes"].shape == (2, 3, 4) and data["box_group"].tolist()[1] == [0, -1, -1]

    for k, name in enumerate(data["id"]):
        boxes = np.array(FLICKR[name], np.float64)
        stored = data["boxes"][k][: len(boxes)]
        assert np.array_equal(stored.astype(np.float64) * 256, boxes)  # v / 256 is exact
        # int(224 * v / 256), from the stored values, equals the reference pixels.
        assert np.array_equal(
            np.trunc(224 * stored.astype(np.float64)).astype(int),
            (224 * boxes.astype(int)) // 256,
        )
        groups = data["box_group"][k]
        per_annotator = [stored[groups[: len(boxes)] == g] * 256.0 for g in range(len(boxes))]
        assert np.array_equal(gt_flickr(per_annotator), gt_flickr(boxes))
    # Hand check of the soft map (224 px: box 0 = x 87..175, y 17..157; box 1 = x 84..183,
    # y 26..166; box 2 = everything): three boxes -> 1, two -> 1, one -> 0.5.
    gt = gt_flickr(data["boxes"][0][:3].astype(np.float64) * 256)
    assert gt[100, 150] == 1.0 and gt[160, 180] == 1.0 and gt[5, 5] == 0.5
    assert gt.min() == 0.5 and set(np.unique(gt)) == {0.5, 1.0}


def test_flickr_labels_enable_offscreen(tmp_path):
    root = tmp_path / "flickr"
    (root / "Annotations").mkdir(parents=True)
    for n, name in enumerate(("1", "2", "3")):
        (root / "Annotations" / f"{name}.xml").write_text(_flickr_xml([[0, 0, 128, 128]]))
        write_jpeg(root / "frames" / f"{name}.jpg", frame_pattern(n, 32, 32))
        write_wav(root / "audio" / f"{name}.wav", tone(400 + 200 * n, 3.0))
    (tmp_path / "labels.csv").write_text("id,class\n1,bird\n2,bird\n3,drum\n")
    result = run("flickr", tmp_path / "out", root=root, labels=tmp_path / "labels.csv")
    data = rows(tmp_path / "out", ["label", "offscreen_label"])
    assert result.written == 3
    assert data["label"].tolist() == [0, 0, 1] and data["offscreen_label"].tolist() == [1, 1, 0]


# --------------------------------------------------------------------------------------------
# IS3
# --------------------------------------------------------------------------------------------


def test_is3_pairs_share_an_image_and_keep_pixel_boxes(tmp_path):
    root = tmp_path / "synthetic3240"
    classes = ["cat", "dog", "horn", "bell"]
    entries, mask_entries, expected = [], [], {}
    boxes = [[3, 17, 101, 223], [0, 1, 223, 224], [50, 60, 70, 80], [7, 9, 11, 13]]
    for i in range(3):
        image = f"/data/visual_frames/img{i}.jpg"  # the JSON's own absolute paths
        write_jpeg(root / "visual_frames" / f"img{i}.jpg", frame_pattern(i, 224, 224))
        for j in range(2):
            cls = classes[(i + j) % 4]
            audio = f"/data/audio_wav/{cls}_{i}{j}.wav"
            write_wav(
                root / "audio_wav" / f"{cls}_{i}{j}.wav", tone(300 + 150 * classes.index(cls), 3.0)
            )
            box = boxes[(i + j) % 4]
            mask = np.zeros((224, 224), np.uint8)
            mask[box[1] : box[3], box[0] : box[2]] = 255
            write_png(root / "masks" / f"m{i}{j}.png", mask)
            entries.append({"image": image, "audio": audio, "gt_box": box, "class": cls})
            mask_entries.append({"image": image, "audio": audio, "mask": f"masks/m{i}{j}.png"})
            expected[f"img{i}__{cls}_{i}{j}"] = (box, cls, mask > 0)
    (root / "synthetic3240_bbox.json").write_text(json.dumps(entries))
    (root / "synthetic3240_mask.json").write_text(json.dumps(mask_entries))

    out = tmp_path / "out"
    result = run(
        "is3",
        out,
        annotations=root / "synthetic3240_bbox.json",
        masks=root / "synthetic3240_mask.json",
    )
    assert result.written == 6 and not result.skipped
    info = read_info(result.shards[0])
    assert info.attrs["ground_truth"] == "mask"
    names = info.attrs["class_names"]
    data = rows(out)
    for k, sample_id in enumerate(data["id"]):
        box, cls, mask = expected[sample_id]
        assert np.trunc(224 * data["boxes"][k, 0].astype(np.float64)).astype(int).tolist() == box
        assert names[data["label"][k]] == cls
        assert np.array_equal(data["mask"][k], mask.astype(np.uint8))
        image_classes = {names[c] for c in data["present"][k]}
        assert len(image_classes) == 2 and cls in image_classes
        assert names[data["offscreen_label"][k]] not in image_classes  # neither sound's class
        assert data["group"][k] == sample_id.split("__")[0]
    assert len(set(data["group"])) == 3


# --------------------------------------------------------------------------------------------
# AVSBench S4
# --------------------------------------------------------------------------------------------


def _s4_corpus(root: Path, videos: dict[str, str]) -> None:
    data = root / "s4_data"
    lines = ["name,ref,category,split"]
    for n, (name, category) in enumerate(videos.items()):
        lines.append(f"{name},x,{category},test")
        write_wav(data / "audio_wav" / "test" / category / f"{name}.wav", tone(400 + 300 * n, 5.0))
        for k in range(1, 6):
            sub = data / "visual_frames" / "test" / category
            frame_dir = sub / name if n == 0 else sub  # nested and flat layouts
            write_png(frame_dir / f"{name}_{k}.png", frame_pattern(10 * n + k, 40, 30))
            mask = np.zeros((30, 40), np.uint8)
            mask[k : 10 + k, 5:20] = 1
            mask_dir = data / "gt_masks" / "test" / category / name
            write_png(mask_dir / f"{name}_{k}.png", mask)
    lines.append("other,x,dog,train")
    (root / "s4_meta_data.csv").write_text("\n".join(lines) + "\n")


def test_avsbench_s4_frames_masks_and_whole_audio(tmp_path):
    root = tmp_path / "Single-source"
    _s4_corpus(root, {"vidA": "helicopter", "vidB": "dog_barking"})
    out = tmp_path / "out"
    result = run("avsbench-s4", out, root=root, image_size=40)
    assert result.written == 10 and not result.skipped
    info = read_info(result.shards[0])
    assert info.attrs["ground_truth"] == "mask" and info.attrs["clip_seconds"] == 5.0
    data = rows(out)
    assert data["audio"].shape == (10, 5 * RATE)  # the whole 5 s clip
    for row, sample_id in enumerate(data["id"]):
        name, k = sample_id.rsplit("_", 1)
        n, k = ["vidA", "vidB"].index(name), int(k)
        assert data["group"][row] == name
        assert read_frame_pattern(data["image"][row]) == 10 * n + k
        expected = np.zeros((30, 40), np.uint8)
        expected[k : 10 + k, 5:20] = 1
        resized = np.asarray(Image.fromarray(expected * 255).resize((40, 40), Image.NEAREST)) > 0
        assert np.array_equal(data["mask"][row], resized.astype(np.uint8))
        assert data["time"][row] == pytest.approx(k - 1 + 15 / 16)
        assert dominant_frequency(data["audio"][row], RATE) == pytest.approx(400 + 300 * n, abs=2)
        assert data["offscreen_label"][row] != data["label"][row]


def test_avsbench_s4_video_frames_follow_the_spec_timing(tmp_path):
    root = tmp_path / "Single-source"
    _s4_corpus(root, {"vidA": "helicopter", "vidB": "dog_barking"})
    videos = tmp_path / "raw"
    videos.mkdir()
    write_video(videos / "vidA.mp4", seconds=5, fps=8, audio_rate=None)
    out = tmp_path / "out"
    result = run("avsbench-s4", out, root=root, videos=videos, offscreen=False)
    assert result.written == 5 and {s.id for s in result.skipped} == {
        f"vidB_{k}" for k in range(1, 6)
    }
    data = rows(out, ["id", "image", "time"])
    # frame k = int((k - 1) * fps + 15/16 * fps) = 7, 15, 23, 31, 39 at 8 fps (7.5 -> 7)
    assert [read_frame_pattern(img) for img in data["image"]] == [7, 15, 23, 31, 39]
    assert data["time"].tolist() == pytest.approx([7 / 8, 15 / 8, 23 / 8, 31 / 8, 39 / 8])


# --------------------------------------------------------------------------------------------
# Generic manifest
# --------------------------------------------------------------------------------------------


def test_manifest_lines_pixel_boxes_video_time_and_negatives(tmp_path):
    root = tmp_path / "mine"
    write_jpeg(root / "img" / "a.jpg", frame_pattern(3, 200, 100))
    write_wav(root / "snd" / "a.wav", tone(500, 4.0))
    write_wav(root / "snd" / "neg.wav", tone(1200, 4.0))
    write_video(root / "vid" / "b.mp4", seconds=6, fps=5, audio_rate=16000)
    lines = [
        {
            "id": "a",
            "image": "img/a.jpg",
            "audio": "snd/a.wav",
            "label": "trumpet",
            "boxes": [[20, 10, 120, 90]],
            "box_format": "pixel",
            "negatives": [{"audio": "snd/neg.wav", "label": "rain"}],
        },
        {
            "id": "b",
            "video": "vid/b.mp4",
            "time": 2.0,
            "label": "bell",
            "boxes": [[0.25, 0.5, 0.75, 1.0]],
            "negatives": ["snd/neg.wav"],
        },
        "{not json",
        {"id": "c", "audio": "snd/a.wav"},
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    (root / "list.jsonl").write_text(text + "\n")
    out = tmp_path / "out"
    result = run("manifest", out, manifest=root / "list.jsonl", name="mine")
    assert result.written == 2
    assert [(s.id, s.reason[:14]) for s in result.skipped] == [
        ("line 3", "not valid JSON"),
        ("line 4", "needs exactly "),
    ]
    assert result.shards[0].name == "mine-test-00000.h5"
    info = read_info(result.shards[0])
    assert info.attrs["ground_truth"] == "boxes" and info.attrs["source"] == "mine"
    data = rows(out)
    # Pixel boxes in the 200 x 100 image: x / 200, y / 100.
    assert np.trunc(224 * data["boxes"][0, 0].astype(np.float64)).astype(int).tolist() == [
        22,
        22,
        134,
        201,  # 22.4, 22.4, 134.4, 201.6
    ]
    assert read_frame_pattern(data["image"][0]) == 3
    assert read_frame_pattern(data["image"][1]) == 10  # 2.0 s at 5 fps
    quarter = RATE // 4
    assert dominant_frequency(data["audio"][1][:quarter], RATE) == pytest.approx(300, abs=8)
    names = info.attrs["class_names"]
    assert names == ["bell", "rain", "trumpet"]
    assert [names[v] for v in data["offscreen_label"][:1]] == ["rain"]
    assert data["offscreen_label"][1] == -1  # a negative without a label
    for wave in data["offscreen_audio"]:
        assert dominant_frequency(wave, RATE) == pytest.approx(1200, abs=3)
    assert read_report(out) == result.skipped
