"""Media and a tiny network for the ``avloc localize`` tests (tests/test_localize*.py): generated
pictures and tones, MP4 and M4A files written with PyAV, the media files the tests read
(:func:`write_media`, broken ones too) and a tiny network saved with three calibrations
(:func:`save_models`). Each test module's fixtures call these once for the module.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image

from avloc.jobs import localize as lz
from avloc.media.image import load_image
from avloc.models import AudioVisualNet
from avloc.models.io import save_network

INPUTS = {"image_size": 64, "sample_rate": 16000, "clip_seconds": 1.0}


# ------------------------------------------------------------------------------------------
# generated media


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with a bright square: structure that survives JPEG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 90)], -1)
    top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
    img[top : top + h // 3, left : left + w // 3] = rng.integers(150, 255, 3)
    return img.astype(np.uint8)


def tone(seconds: float, rate: int = 44100, freq: float = 440.0, stereo: bool = True):
    t = np.arange(int(round(seconds * rate))) / rate
    left = 0.5 * np.sin(2 * np.pi * freq * t)
    if not stereo:
        return left.astype(np.float32)
    right = 0.3 * np.sign(np.sin(2 * np.pi * freq / 3 * t))
    return np.stack([left, right], axis=1).astype(np.float32)


def write_av(path: Path, seconds: float, video: bool = True, audio: bool = True) -> None:
    """An mp4/m4a with an MPEG-4 video stream (varying frames) and/or a stereo AAC stream."""
    rate, fps = 44100, 10
    with av.open(str(path), "w") as out:  # every stream must exist before the first mux
        a = out.add_stream("aac", rate=rate) if audio else None
        if a is not None:
            a.layout = "stereo"
        v = out.add_stream("mpeg4", rate=fps) if video else None
        if v is not None:
            v.width, v.height, v.pix_fmt = 48, 34, "yuv420p"
            for k in range(int(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(scene(34, 48, seed=k), format="rgb24")
                for packet in v.encode(frame):
                    out.mux(packet)
            for packet in v.encode(None):
                out.mux(packet)
        if a is not None:
            samples = tone(seconds, rate).T.copy()
            for i in range(0, samples.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, i : i + 1024]), format="fltp", layout="stereo"
                )
                frame.sample_rate, frame.pts = rate, i
                frame.time_base = Fraction(1, rate)
                for packet in a.encode(frame):
                    out.mux(packet)
            for packet in a.encode(None):
                out.mux(packet)


def write_media(d: Path) -> dict[str, Path]:
    """The files the tests read, written into ``d``: a picture, a stereo tone, silence, a video
    and a mute one, and broken audio and image files."""
    m: dict[str, Path] = {}
    m["image"] = d / "scene.png"
    Image.fromarray(scene(37, 53)).save(m["image"])
    m["wav"] = d / "tone.wav"
    sf.write(m["wav"], tone(2.5), 44100)
    m["silence"] = d / "silence.wav"
    sf.write(m["silence"], np.zeros((44100 * 2, 2), np.float32), 44100)
    m["video"] = d / "clip.mp4"
    write_av(m["video"], 2.0)
    m["mute"] = d / "mute.mp4"
    write_av(m["mute"], 1.0, audio=False)
    m["notes"] = d / "notes.wav"
    m["notes"].write_text("not audio at all\n" * 40)
    m["empty"] = d / "empty.wav"
    m["empty"].write_bytes(b"")
    m["noframes"] = d / "noframes.wav"
    sf.write(m["noframes"], np.zeros((0, 2), np.float32), 44100)
    m["badimage"] = d / "broken.jpg"
    m["badimage"].write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    return m


# ------------------------------------------------------------------------------------------
# the network


def tiny_net(calibration=None) -> AudioVisualNet:
    return AudioVisualNet(
        embed_dim=8,
        visual=dict(width=4, stem_pool=False),  # 64 px -> 4x4 maps
        audio=dict(width=4),
        inputs=INPUTS,
        calibration=calibration,
        name="avnet",
    )


def save_models(d: Path, media: dict[str, Path]) -> dict:
    """A tiny network saved three times into ``d``: Uth below, Uth above its silence maximum (on
    ``media``'s picture), no Uth."""
    net = tiny_net()
    image = load_image(media["image"])
    silence = np.zeros(16000, np.float32)
    silence_max = lz.localize_pair(net, image, silence, uth=0.0).max_score
    out = {"silence_max": silence_max, "dir": d}
    for name, calibration in [
        ("low", {"uth": -1.0, "statistic": "test"}),
        ("high", {"uth": silence_max + 0.02, "statistic": "test"}),
        ("none", None),
    ]:
        net.calibration = calibration
        out[name] = save_network(net, d / f"{name}.keras")
    return out
