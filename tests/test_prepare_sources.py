"""Round trips of every ``avloc prepare`` source on tiny fake corpora in the public layouts.

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
import soundfile as sf
from fakemedia import (
    dominant_frequency,
    frame_pattern,
    read_frame_pattern,
    tone_frequency,
    write_video,
)
from PIL import Image
from typer.testing import CliRunner

from avloc.data.prepare import prepare, read_report
from avloc.data.shards import ShardSet, read_info
from avloc.data.sources import build_preparer, preparer_names
from avloc.errors import DataError
from avloc.inputs.images import resize_uint8
from avloc.media.image import load_image
from avloc.metrics import gt_flickr, gt_from_boxes_normalized
from avloc_cli.main import app

RATE = 16000


def write_jpeg(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=95)
    return path


def write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def write_wav(path: Path, wave: np.ndarray, rate: int = RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(wave, np.float32), rate, subtype="PCM_16")
    return path


def tone(freq: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def marker(seconds: float, rate: int = RATE) -> np.ndarray:
    """A waveform whose values tell the position: a 997-sample sawtooth on a slow ramp.

    Neighbouring samples differ by at least 14 LSB, so a clip cut one sample off is caught.
    """
    n = np.arange(int(round(seconds * rate)))
    wave = 0.45 * (n % 997) / 997 + 0.45 * n / len(n)
    return (np.round(wave * 32768) / 32768).astype(np.float32)


def rows(out: Path, fields=None) -> dict[str, np.ndarray]:
    shards = ShardSet(out)
    return shards.read(np.arange(len(shards)), fields or list(shards.fields))


def run(source: str, out: Path, shard_size: int = 500, workers: int = 1, **options):
    return prepare(build_preparer(source, **options), out, shard_size=shard_size, workers=workers)


def test_every_source_is_registered():
    assert preparer_names() == sorted(
        ["vggsound", "vggss", "flickr", "is3", "avsbench-s4", "manifest"]
    )


def test_every_source_has_its_prepare_command(monkeypatch):
    """``avloc prepare NAME`` for each registered name (and no other), passing NAME on."""
    import inspect

    import avloc_cli.prepare
    from avloc_cli.app import prepare_app

    commands = {info.name: info.callback for info in prepare_app.registered_commands}
    assert set(commands) == {*preparer_names(), "synthetic", "inspect"}
    seen = []
    monkeypatch.setattr(
        avloc_cli.prepare, "_run", lambda source, *args, **options: seen.append(source)
    )
    for name in preparer_names():
        parameters = inspect.signature(commands[name]).parameters.items()
        commands[name](**{k: Path("x") for k, p in parameters if p.default is p.empty})
        assert seen[-1] == name, f"avloc prepare {name} runs source {seen[-1]!r}"


def test_every_source_command_offers_the_options_its_class_declares():
    """``avloc prepare NAME --help`` lists what NAME's class declares, in its order, and each
    option feeds a keyword argument of the class with the class's own default: a source's
    options are written once, in the source."""
    import inspect

    import typer

    from avloc.data.prepare_synthetic import SyntheticSource
    from avloc.data.sources import preparer_classes
    from avloc.data.sources.common import SHARED_OPTIONS

    group = typer.main.get_command(app).commands["prepare"]
    classes = (SyntheticSource, *preparer_classes())
    assert list(group.commands) == [cls.source for cls in classes] + ["inspect"]
    assert [cls.source for cls in preparer_classes()] != sorted(preparer_names())  # help order
    for cls in classes:
        command = group.commands[cls.source]
        declared = cls.command_options()
        assert command.help == cls.summary and command.epilog == f"Example: {cls.example}"
        assert [p.name for p in command.params] == [o.name for o in declared], cls.source
        for option, param in zip(declared, command.params, strict=True):
            if option.argument:
                assert param.param_type_name == "argument" and param.name == option.flags
            else:
                assert "/".join([*param.opts, *param.secondary_opts]) == option.flags
            assert param.required == option.required, (cls.source, option.flags)
            if not option.required:
                assert param.default == option.default, (cls.source, option.flags)
        # Every keyword argument of the class is offered (none forgotten), with its default.
        constructor = inspect.signature(cls).parameters
        own = {n: p for n, p in constructor.items() if p.kind is not p.VAR_KEYWORD}
        offered = {p.name: p for p in command.params}
        assert set(own) == {o.name for o in cls.options} <= set(offered), cls.source
        for name, parameter in own.items():
            assert offered[name].required == (parameter.default is parameter.empty)
            if parameter.default is not parameter.empty:
                assert offered[name].default == parameter.default, (cls.source, name)
        for name in getattr(cls, "shared", ()):
            assert name in SHARED_OPTIONS and offered[name].help == SHARED_OPTIONS[name].help


def test_a_source_command_passes_each_option_by_name(monkeypatch):
    import avloc_cli.prepare

    seen = []
    monkeypatch.setattr(
        avloc_cli.prepare, "_run", lambda *args, **options: seen.append((args, options))
    )
    result = CliRunner().invoke(
        app,
        ["prepare", "vggss", "--root", "r", "--annotations", "a.json", "--out", "o"]
        + ["--no-offscreen", "--audio-seconds", "10", "--frame-time", "4", "--workers", "3"]
        + ["--part", "2/3", "--class-groups", "g.json"],
    )
    assert result.exit_code == 0, result.output
    assert seen == [
        (
            ("vggss", Path("o"), 3, 500, "2/3"),
            dict(
                root=Path("r"),
                annotations=Path("a.json"),
                layout="auto",
                frame_time=4.0,
                image_size=None,
                seed=0,
                offscreen=False,
                class_groups=Path("g.json"),
                min_audio_seconds=1.0,
                audio_seconds=10.0,
            ),
        )
    ]
    result = CliRunner().invoke(
        app, ["prepare", "vggsound", "--root", "r", "--out", "o", "--seed", "1"]
    )
    assert result.exit_code == 2 and "No such option: --seed" in result.output  # not vggsound's


# --------------------------------------------------------------------------------------------
# VGGSound (training)
# --------------------------------------------------------------------------------------------


def test_vggsound_videos_frame_and_audio_around_it(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("aaa_000010", "bbb_000020"):
        write_video(videos / f"{name}.mp4", seconds=10, fps=5, audio_rate=22050)
    (tmp_path / "ids.txt").write_text("aaa_000010\nbbb_000020.mp4\nccc_000030\n")
    (tmp_path / "vggsound.csv").write_text("aaa,10,dog barking,train\nbbb,20,cat purring,train\n")

    out = tmp_path / "out"
    result = run(
        "vggsound",
        out,
        root=videos,
        ids=tmp_path / "ids.txt",
        labels=tmp_path / "vggsound.csv",
        frame_time=3.0,
    )
    assert result.written == 2
    assert [(s.id, s.reason) for s in result.skipped] == [
        ("ccc_000030", "no video file for this id")
    ]
    info = read_info(result.shards[0])
    assert info.attrs["split"] == "train" and info.attrs["sample_rate"] == RATE
    assert info.attrs["class_names"] == ["cat purring", "dog barking"]
    data = rows(out)
    assert list(data["id"]) == ["aaa_000010", "bbb_000020"]
    assert list(data["label"]) == [1, 0]
    assert data["image"].shape == (2, 256, 256, 3)  # train images are stored at 256
    for img in data["image"]:
        assert read_frame_pattern(img) == 15  # the frame at 3.0 s of a 5 fps video
    assert data["audio"].shape == (2, 3 * RATE)  # 3 s at 16 kHz
    # The clip spans 1.5 s .. 4.5 s: it starts in second 1 and ends in second 4 of the tones.
    quarter = RATE // 4
    for wave in data["audio"]:
        assert dominant_frequency(wave[:quarter], RATE) == pytest.approx(tone_frequency(1), abs=8)
        assert dominant_frequency(wave[-quarter:], RATE) == pytest.approx(tone_frequency(4), abs=8)

    # Default frame time: the middle of the clip (5.0 s), audio centred there (3.5 .. 6.5 s).
    result = run("vggsound", tmp_path / "mid", root=videos, image_size=64)
    data = rows(tmp_path / "mid")
    assert result.written == 2 and data["image"].shape[1:] == (64, 64, 3)
    assert read_frame_pattern(data["image"][0]) == 25
    assert dominant_frequency(data["audio"][0][:quarter], RATE) == pytest.approx(600, abs=8)
    assert dominant_frequency(data["audio"][0][-quarter:], RATE) == pytest.approx(900, abs=8)
    assert list(data["label"]) == [-1, -1]


def test_vggsound_extracted_layout_cuts_the_middle_of_the_audio(tmp_path):
    root = tmp_path / "vggsound"
    rng = np.random.default_rng(0)
    images = {}
    for name in ("a_000001", "b_000002"):
        images[name] = rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)
        write_jpeg(root / "frames" / f"{name}.jpg", images[name])
    write_wav(root / "audio" / "a_000001.wav", marker(4.0))
    write_wav(root / "audio" / "b_000002.wav", tone(440, 2.0, 44100), 44100)

    out = tmp_path / "out"
    result = run("vggsound", out, root=root, image_size=96)
    assert result.written == 2 and not result.skipped
    data = rows(out)
    for name, img in zip(data["id"], data["image"], strict=True):
        jpg = root / "frames" / f"{name}.jpg"
        assert np.array_equal(img, resize_uint8(load_image(jpg), 96))
    # 4 s of audio: the middle 3 s start at 0.5 s = sample 8000.
    expected = marker(4.0)[8000 : 8000 + 3 * RATE]
    assert np.abs(data["audio"][0] - expected).max() <= 3 / 32767
    # 2 s at 44.1 kHz: resampled to 16 kHz and tiled to exactly 3 s.
    assert data["audio"].shape == (2, 3 * RATE)
    assert dominant_frequency(data["audio"][1], RATE) == pytest.approx(440, abs=3)


# --------------------------------------------------------------------------------------------
# VGG-SS
# --------------------------------------------------------------------------------------------

VGGSS_BOXES = {
    "aa_000010": ("dog", [[0.403125, 0.253125, 0.6, 0.75]]),
    "bb_000020": (
        "cat",
        [[0.121875, 0.171875, 0.6, 0.853125], [0.765625, 0.275, 0.984375, 0.565625]],
    ),
    "cc_000030": ("car", [[0.0, 0.06875, 0.7000000000000001, 0.8999999999999999]]),
    "dd_000040": ("dog", [[0.26875, 1.0, 0.753125, 1.0]]),
}
CLASS_TONE = {"car": 500.0, "cat": 700.0, "dog": 900.0}


def _vggss_extracted(root: Path) -> Path:
    entries = []
    for n, (name, (cls, boxes)) in enumerate(VGGSS_BOXES.items()):
        write_jpeg(root / "frames" / f"{name}.jpg", frame_pattern(n, 80, 60))
        write_wav(root / "audio" / f"{name}.wav", tone(CLASS_TONE[cls], 10.0))
        entries.append({"file": name, "class": cls, "bbox": boxes})
    path = root / "vggss.json"
    path.write_text(json.dumps(entries))
    return path


def test_vggss_boxes_are_stored_exactly_and_offscreen_is_another_class(tmp_path):
    root = tmp_path / "vggss"
    annotations = _vggss_extracted(root)
    out = tmp_path / "out"
    result = run("vggss", out, root=root, annotations=annotations)
    assert result.written == 4 and not result.skipped
    info = read_info(result.shards[0])
    assert info.attrs["ground_truth"] == "boxes" and info.attrs["split"] == "test"
    assert info.attrs["class_names"] == ["car", "cat", "dog"]
    data = rows(out)
    assert data["image"].shape == (4, 224, 224, 3) and data["boxes"].shape == (4, 2, 4)
    names = info.attrs["class_names"]

    # Hand-computed pixels: int(224 * v) per coordinate (docs/protocol.md).
    pixels = np.trunc(np.nan_to_num(data["boxes"], nan=-1).astype(np.float64) * 224).astype(int)
    assert pixels[0, 0].tolist() == [90, 56, 134, 168]  # 90.3, 56.7, 134.4, 168.0
    assert pixels[1, 1].tolist() == [171, 61, 220, 126]  # 171.5, 61.6, 220.5, 126.7
    assert pixels[2, 0].tolist() == [0, 15, 156, 201]  # 0.7000000000000001 -> 156.8
    assert np.isnan(data["boxes"][0, 1]).all() and np.isnan(data["boxes"][2, 1]).all()

    for k, name in enumerate(data["id"]):
        cls, boxes = VGGSS_BOXES[name]
        assert names[data["label"][k]] == cls and data["present"][k].tolist() == [data["label"][k]]
        stored = data["boxes"][k][~np.isnan(data["boxes"][k]).any(axis=1)]
        assert np.array_equal(
            gt_from_boxes_normalized(stored), gt_from_boxes_normalized(np.array(boxes))
        )
        # The offscreen clip is a real clip of a class absent from the image.
        off = int(data["offscreen_label"][k])
        assert off != data["label"][k]
        freq = dominant_frequency(data["offscreen_audio"][k], RATE)
        assert freq == pytest.approx(CLASS_TONE[names[off]], abs=3)
        assert dominant_frequency(data["audio"][k], RATE) == pytest.approx(CLASS_TONE[cls], abs=3)
        # The frame is the annotated one (its JPEG, resized).
        assert read_frame_pattern(data["image"][k]) == list(VGGSS_BOXES).index(name)


def test_vggss_videos_take_the_frame_at_five_seconds(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    entries = []
    for name, (cls, boxes) in list(VGGSS_BOXES.items())[:3]:
        write_video(videos / f"{name}.mp4", seconds=10, fps=5, audio_rate=16000)
        entries.append({"file": name, "class": cls, "bbox": boxes})
    (tmp_path / "vggss.json").write_text(json.dumps(entries))
    out = tmp_path / "out"
    result = run("vggss", out, root=videos, annotations=tmp_path / "vggss.json")
    assert result.written == 3
    data = rows(out, ["image", "audio", "offscreen_audio"])
    quarter = RATE // 4
    for img, wave in zip(data["image"], data["audio"], strict=True):
        assert read_frame_pattern(img) == 25  # 5.0 s at 5 fps
        assert dominant_frequency(wave[:quarter], RATE) == pytest.approx(600, abs=8)  # 3.5 s
        assert dominant_frequency(wave[-quarter:], RATE) == pytest.approx(900, abs=8)  # 6.5 s


def test_vggss_audio_seconds_stores_the_whole_clip_around_the_frame(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    name, (cls, boxes) = next(iter(VGGSS_BOXES.items()))
    write_video(videos / f"{name}.mp4", seconds=10, fps=5, audio_rate=16000)
    (tmp_path / "vggss.json").write_text(json.dumps([{"file": name, "class": cls, "bbox": boxes}]))
    out = tmp_path / "out"
    result = run("vggss", out, root=videos, annotations=tmp_path / "vggss.json",
                 audio_seconds=10.0, offscreen=False)  # fmt: skip
    assert read_info(result.shards[0]).attrs["clip_seconds"] == 10.0
    wave = rows(out, ["audio"])["audio"][0]
    quarter = RATE // 4
    assert wave.shape == (10 * RATE,)  # 0-10 s: centred on the frame at 5 s
    assert dominant_frequency(wave[:quarter], RATE) == pytest.approx(300, abs=8)  # 0 s
    assert dominant_frequency(wave[-quarter:], RATE) == pytest.approx(1200, abs=8)  # 9.75 s
    with pytest.raises(DataError, match="--audio-seconds"):
        build_preparer("vggss", root=videos, annotations=tmp_path / "vggss.json",
                       audio_seconds=0.0)  # fmt: skip


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
