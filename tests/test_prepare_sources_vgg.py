"""Round trips of the VGG sources of ``avloc prepare`` on tiny fake corpora in the public
layouts: VGGSound (training: videos and the extracted layout) and VGG-SS (boxes, offscreen clips,
the annotated frame, the clip's length).

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
from fakemedia import (
    dominant_frequency,
    frame_pattern,
    read_frame_pattern,
    tone_frequency,
    write_video,
)
from prepare_harness import RATE, marker, rows, run, tone, write_jpeg, write_wav

from avloc.data.shards import read_info
from avloc.data.sources import build_preparer
from avloc.data.sources.common import clip_id
from avloc.errors import DataError
from avloc.inputs.images import resize_uint8
from avloc.media.image import load_image
from avloc.metrics import gt_from_boxes_normalized

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

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


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("A-ZzvGPcdOI_000011.mp4", "A-ZzvGPcdOI_000011"),  # VGGSound / Loie/VGGSound mirror
        ("A-ZzvGPcdOI_11.mp4", "A-ZzvGPcdOI_000011"),  # unpadded start
        ("video/---g-f_I2yQ_1", "---g-f_I2yQ_000001"),  # '_' and '-' inside the YouTube id
        ("--0PQM4-hqg_000030_000040.mp4", "--0PQM4-hqg_000030"),  # start_end, seconds
        ("hpDY7u8B8hE_5000_15000.mp4", "hpDY7u8B8hE_000005"),  # start_end, milliseconds
        ("--0PQM4-hqg_0_10000", "--0PQM4-hqg_000000"),
        ("aaa_000010.mp4", "aaa_000010"),  # no YouTube id: kept as it is
        ("10000130166.jpg", "10000130166"),  # a Flickr id
    ],
)
def test_clip_id_reads_every_name_in_circulation(name, expected):
    assert clip_id(name) == expected


LOIE = "scratch/shared/beegfs/hchen/train_data/VGGSound_final/video"  # the mirror's tar paths
MIRROR_FILES = {  # canonical id -> the name the file has on disk
    "A-ZzvGPcdOI_000011": "A-ZzvGPcdOI_000011.mp4",
    "--0PQM4-hqg_000030": "--0PQM4-hqg_30.mp4",
    "-0DIFwkUpjQ_000050": "-0DIFwkUpjQ_000050_000060.mp4",
    "hpDY7u8B8hE_000005": "hpDY7u8B8hE_5000_15000.mkv",
}


def test_vggsound_mirror_names_match_the_list_and_missing_ids_are_listed(tmp_path):
    root = tmp_path / "VGGSound"
    for name in MIRROR_FILES.values():
        write_video(root / LOIE / name, seconds=2, fps=5, audio_rate=16000)
    # vggss_144k.txt style (padded ids), one id in an unpadded spelling, two without a file
    ids = ["A-ZzvGPcdOI_000011", "--0PQM4-hqg_000030", "-0DIFwkUpjQ_50", "hpDY7u8B8hE_000005",
           "zzzzzzzzzzz_000001", "yyyyyyyyyyy_000002.mp4"]  # fmt: skip
    (tmp_path / "vggss_144k.txt").write_text("\n".join(ids) + "\n")
    (tmp_path / "vggsound.csv").write_text(
        "A-ZzvGPcdOI,11,dog barking,train\n--0PQM4-hqg,30,cat purring,train\n"
        "-0DIFwkUpjQ,50,dog barking,test\n"
    )
    out = tmp_path / "out"
    result = run("vggsound", out, root=root, ids=tmp_path / "vggss_144k.txt",
                 labels=tmp_path / "vggsound.csv", image_size=32)  # fmt: skip
    assert result.written == 4
    data = rows(out, ["id", "label"])
    assert sorted(data["id"]) == sorted(MIRROR_FILES)
    labels = dict(zip(data["id"], data["label"], strict=True))
    assert labels == {"--0PQM4-hqg_000030": 0, "-0DIFwkUpjQ_000050": 1,
                      "A-ZzvGPcdOI_000011": 1, "hpDY7u8B8hE_000005": -1}  # fmt: skip
    missing = ["zzzzzzzzzzz_000001", "yyyyyyyyyyy_000002"]
    assert (out / "missing_ids.txt").read_text().splitlines() == missing
    assert "id list vggss_144k.txt: 4 of 6 clips found, 2 missing" in " ".join(result.notes)
    assert sorted(s.id for s in result.skipped) == sorted(missing)

    # Every clip of the folder, no list: no missing_ids.txt; the ids are canonical.
    result = run("vggsound", tmp_path / "all", root=root, image_size=32)
    assert sorted(rows(tmp_path / "all", ["id"])["id"]) == sorted(MIRROR_FILES)
    assert not (tmp_path / "all" / "missing_ids.txt").exists()


def test_vggsound_ssltie_layout_takes_the_middle_frame_of_each_folder(tmp_path):
    root = tmp_path / "VGGSound"
    for k, name in enumerate(("--0PQM4-hqg_000030", "-0DIFwkUpjQ_50")):
        for n in range(1, 6):  # SSL-TIE: total_video_frames/<id>/001.jpg ... at 25 fps
            write_jpeg(root / "total_video_frames" / name / f"{n:03d}.jpg",
                       frame_pattern(10 * k + n, 80, 60))  # fmt: skip
        write_wav(root / "total_video_3s_audio" / f"{name}.wav", tone(500 + 200 * k, 3.0))
    (tmp_path / "ids.txt").write_text("--0PQM4-hqg_30\n-0DIFwkUpjQ_000050\nzzzzzzzzzzz_000001\n")
    out = tmp_path / "out"
    result = run("vggsound", out, root=root, ids=tmp_path / "ids.txt", image_size=64)
    assert result.written == 2
    data = rows(out)
    assert list(data["id"]) == ["--0PQM4-hqg_000030", "-0DIFwkUpjQ_000050"]
    assert [read_frame_pattern(img) for img in data["image"]] == [3, 13]  # 003.jpg of 5
    assert dominant_frequency(data["audio"][1], RATE) == pytest.approx(700, abs=3)
    assert (out / "missing_ids.txt").read_text() == "zzzzzzzzzzz_000001\n"
    assert [(s.id, s.reason) for s in result.skipped] == [
        ("zzzzzzzzzzz_000001", "no frame file for this id")
    ]


def test_vggsound_frame_and_audio_folders_with_unpadded_names(tmp_path):
    root = tmp_path / "vggss"  # SSL-TIE's test layout: frame/<id>.jpg + audio/<id>.wav
    write_jpeg(root / "frame" / "A-ZzvGPcdOI_11.jpg", frame_pattern(7, 80, 60))
    write_wav(root / "audio" / "A-ZzvGPcdOI_000011.wav", tone(440, 2.0))
    write_jpeg(root / "frame" / "--0PQM4-hqg_30.jpg", frame_pattern(8, 80, 60))  # no audio
    result = run("vggsound", tmp_path / "out", root=root, image_size=64)
    assert result.written == 1
    data = rows(tmp_path / "out")
    assert list(data["id"]) == ["A-ZzvGPcdOI_000011"] and read_frame_pattern(data["image"][0]) == 7
    assert [(s.id, s.reason) for s in result.skipped] == [
        ("--0PQM4-hqg_000030", "no audio file for this id")
    ]
    with pytest.raises(DataError, match="no extracted layout"):
        build_preparer("vggsound", root=tmp_path / "out", layout="extracted").plan()


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
