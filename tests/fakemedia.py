"""Small media files with known content, for tests and benchmarks of the preparers.

Test support, not part of the package: tests import it as ``fakemedia`` (pytest puts ``tests/``
on ``sys.path``), benchmarks after adding ``tests/`` to ``sys.path`` themselves.

- :func:`frame_pattern`: frame ``i`` of a video shows ``i`` in binary as ``bits`` vertical
  stripes (white = 1, least significant bit on the left); :func:`read_frame_pattern` reads it
  back from any (resized, compressed) copy.
- :func:`tone_pattern`: second ``s`` of the audio is a sine at ``tone_frequency(s)`` Hz, so the
  dominant frequency of a stretch of audio (:func:`dominant_frequency`) tells where it was cut.
- :func:`write_video`: an MP4 (H.264 + AAC, written with PyAV) made of both.
- :func:`write_m4a`: an AAC ``.m4a`` of :func:`tone_pattern`, written in blocks (any length).
- :func:`peak_rss_mb`: the peak resident memory of Python code run in a fresh process.
- :func:`write_moving_object_video`: a synthetic object crossing the picture, its class sound
  playing only in a chosen span (the heatmap-video test).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = [
    "dominant_frequency",
    "peak_rss_mb",
    "frame_pattern",
    "read_frame_pattern",
    "tone_frequency",
    "tone_pattern",
    "write_m4a",
    "write_moving_object_video",
    "write_video",
]


def frame_pattern(index: int, width: int = 64, height: int = 48, bits: int = 8) -> np.ndarray:
    """uint8 RGB ``(height, width, 3)``: ``index`` as ``bits`` black/white vertical stripes."""
    img = np.zeros((height, width, 3), np.uint8)
    for b in range(bits):
        if (int(index) >> b) & 1:
            img[:, b * width // bits : (b + 1) * width // bits] = 255
    return img


def read_frame_pattern(img: np.ndarray, bits: int = 8) -> int:
    """The index drawn by :func:`frame_pattern` (any size; samples each stripe's centre)."""
    img = np.asarray(img)
    height, width = img.shape[:2]
    value = 0
    for b in range(bits):
        x = int((b + 0.5) * width / bits)
        patch = img[height // 4 : 3 * height // 4, max(x - 1, 0) : x + 2].astype(np.float64)
        if patch.mean() > 127.5:
            value |= 1 << b
    return value


def tone_frequency(second: int) -> float:
    return 300.0 + 100.0 * int(second)


def tone_pattern(seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """float32 mono: second ``s`` is a sine at ``tone_frequency(s)`` Hz."""
    t = np.arange(int(round(seconds * rate))) / rate
    freq = 300.0 + 100.0 * np.floor(t)
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(wave: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the largest FFT bin of ``wave`` (Hann-windowed)."""
    wave = np.asarray(wave, np.float64)
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * rate / len(wave))


def write_video(
    path: str | os.PathLike,
    seconds: float = 10.0,
    fps: int = 5,
    size: tuple[int, int] = (64, 48),
    audio_rate: int | None = 22050,
    crf: int = 18,
) -> None:
    """Write an H.264 MP4 whose frames are :func:`frame_pattern` and audio :func:`tone_pattern`.

    ``audio_rate=None`` writes no audio track. Frame ``i`` has timestamp ``i / fps`` s.
    """
    import av

    width, height = size
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(os.fspath(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": str(crf)}
        audio = None
        if audio_rate:
            audio = container.add_stream("aac", rate=audio_rate)
            audio.layout = "mono"
        for i in range(int(round(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(frame_pattern(i, width, height), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        if audio is not None:
            wave = tone_pattern(seconds, audio_rate)
            for start in range(0, len(wave), 4096):
                chunk = av.AudioFrame.from_ndarray(
                    wave[None, start : start + 4096], format="flt", layout="mono"
                )
                chunk.sample_rate = audio_rate
                chunk.pts = start
                for packet in audio.encode(chunk):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)


def write_m4a(path: str | os.PathLike, seconds: float, rate: int = 22050) -> None:
    """An AAC mono ``.m4a`` of :func:`tone_pattern` (``seconds`` long), encoded 10 s at a time
    so that hours cost no memory."""
    import av

    total = int(round(seconds * rate))
    with av.open(os.fspath(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        for start in range(0, total, 10 * rate):
            t = (start + np.arange(min(10 * rate, total - start))) / rate
            wave = (0.5 * np.sin(2 * np.pi * (300.0 + 100.0 * np.floor(t)) * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(wave[None], format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_moving_object_video(
    path: str | os.PathLike,
    label: int,
    *,
    seconds: float = 8.0,
    fps: int = 10,
    size: int = 96,
    sound_span: tuple[float, float] = (2.0, 6.0),
    sample_rate: int = 16000,
    seed: int = 0,
) -> np.ndarray:
    """An MP4 of one synthetic object of class ``label`` crossing the picture from left to
    right, whose class sound plays only during ``sound_span`` seconds (silence elsewhere).

    The picture is a synthetic-scene background (:mod:`avloc.data.synthetic`), ``size`` px
    square; the object's window is 30 % of the side, vertically centred. Returns the object's
    centre ``x`` (fraction of the width) of every frame, float64 ``(frames,)``.
    """
    from avloc.data.synthetic import SyntheticConfig
    from avloc.data.synthetic.images import background, draw_object
    from avloc.data.synthetic.sounds import class_sound
    from avloc.media.video import VideoWriter

    rng = np.random.default_rng(seed)
    ground = np.clip(np.round(background(rng, size)), 0, 255)
    side = int(round(0.3 * size))
    y0 = (size - side) // 2
    frames = int(round(seconds * fps))
    x0s = np.round(np.linspace(0, size - side, frames)).astype(int)
    span = sound_span[1] - sound_span[0]
    config = SyntheticConfig(sample_rate=sample_rate, clip_seconds=span)
    wave = np.zeros(int(round(seconds * sample_rate)), np.float32)
    first = int(round(sound_span[0] * sample_rate))
    sound = class_sound(label, np.random.default_rng(seed + 1), config)
    wave[first : first + len(sound)] = sound[: len(wave) - first]
    with VideoWriter(path, fps, (size, size), audio_rate=sample_rate) as writer:
        for i, x0 in enumerate(x0s):
            img = ground.astype(np.float32).copy()
            draw_object(img, label, (int(x0), y0, side), np.random.default_rng(seed + 2))
            writer.write_frame(np.clip(np.round(img), 0, 255).astype(np.uint8))
            writer.write_audio(wave[i * sample_rate // fps : (i + 1) * sample_rate // fps])
        writer.commit()
    return (x0s + side / 2.0) / size


def peak_rss_mb(code: str, timeout: float = 600) -> float:
    """Peak resident memory, MB, of a fresh Python process running ``code`` (this checkout
    first on its path).

    ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` of the child, unless the child's own
    high-water mark (``VmHWM`` of its address space, Linux) is lower: Linux carries a forking
    parent's peak into a child's ``ru_maxrss`` across ``exec``, so under a big test process the
    children's figure is the parent's, whatever the child does.
    """
    import resource
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    paths = [*filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)), str(root)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    report = (
        "\nimport os\nif os.path.exists('/proc/self/status'):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'): print('avloc-peak-kb', line.split()[1])\n"
    )
    done = subprocess.run([sys.executable, "-c", code + report], env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    for line in done.stdout.splitlines():
        if line.startswith("avloc-peak-kb "):
            peak_kb = min(peak_kb, int(line.split()[1]))
    return peak_kb / 1024
