"""Localize over time: a video in, a heatmap video with an abstention track and a timeline out.

For output frame ``k`` at ``t_k = start + k / fps`` seconds (``end`` included when it falls on
the grid) the frame on screen at ``t_k`` is paired with the network's clip length of audio
centred on ``t_k`` (a sliding window: hop ``1 / fps``; beyond the track's ends the window is
padded with silence). Frames and windows go through the maps stage
(:class:`avloc.maps.engine.MapsEngine`) ``batch_size`` at a time: the visual map once per
frame, every window of a batch in one audio-encoder call. Each map is upsampled to the output
frame (the video's frames, scaled so the longer side is at most ``max_side`` px) and decided
against Uth exactly as ``avloc localize`` decides a pair
(:class:`~avloc.jobs.localize.Localization`).

Outputs, written atomically (temporary names, renamed at the end; nothing is left on error):

- ``OUT.mp4``: the heatmap blended over each frame, the above-Uth region outlined, and a band
  on top saying ``SOUNDING`` (green) or ``nothing visible is sounding`` with the score against
  Uth; the original audio from ``start`` for as long as the frames last (each ``1 / fps``)
  muxed back in (AAC, mono, the network's rate);
- ``OUT.timeline.json`` / ``OUT.timeline.csv``: one row per output frame: ``time`` (s),
  ``sounding``, ``max_score``, ``uth``, ``peak_x``, ``peak_y`` (pixels of the output frame),
  ``area_above_uth`` (fraction);
- ``OUT.timeline.png``: the score against time with Uth, abstention spans shaded.

Memory is bounded: one batch of frames, the maps of one batch, and the decoded audio from
``start`` to ``end`` (and half a clip on each side; the network's rate, mono float32: about
230 MB for an hour). Frames and audio past ``end`` are never decoded.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avloc.errors import AvlocError, MediaError
from avloc.jobs.localize import Localization, resolve_uth
from avloc.maps.engine import MapsEngine
from avloc.media.audio import load_audio_span
from avloc.media.video import VideoWriter, frames_at, probe
from avloc.utils.files import atomic_path, atomic_write_bytes, atomic_write_json
from avloc.utils.interpolation import upsample

SOUNDING_BAND = (0, 120, 40)  # RGB of the band when something visible is sounding
SILENT_BAND = (40, 40, 40)
TIMELINE_FIELDS = ("time", "sounding", "max_score", "uth", "peak_x", "peak_y", "area_above_uth")


@dataclass
class VideoResult:
    video: Path
    timeline_json: Path
    timeline_csv: Path
    timeline_png: Path
    frames: int
    sounding_frames: int
    timeline: list[dict]


def output_times(start: float, end: float, fps: float) -> np.ndarray:
    """``start + k / fps`` for ``k = 0, 1, ...`` up to ``end`` (seconds, float64)."""
    count = int(math.floor((end - start) * fps + 1e-9)) + 1
    return start + np.arange(max(count, 0)) / fps


def audio_window(wave: np.ndarray, rate: int, center: float, samples: int) -> np.ndarray:
    """``samples`` of ``wave`` centred on ``center`` seconds; silence beyond the track's ends."""
    first = int(round(center * rate)) - samples // 2
    out = np.zeros(samples, np.float32)
    lo, hi = max(first, 0), min(first + samples, len(wave))
    if hi > lo:
        out[lo - first : hi - first] = wave[lo:hi]
    return out


def output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The output frame size: the video's, scaled down to ``max_side`` px on its longer side."""
    scale = min(1.0, max_side / max(width, height)) if max_side > 0 else 1.0
    return max(2, int(round(width * scale))), max(2, int(round(height * scale)))


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (frame.shape[1], frame.shape[0]) == size:
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))


def decorate(frame: np.ndarray, loc: Localization, value_range) -> np.ndarray:
    """The overlay of :func:`avloc.jobs.localize.render` plus the sounding / abstaining band."""
    from avloc.media.overlay import overlay_heatmap, stamp_caption

    out = overlay_heatmap(frame, loc.heatmap, loc.uth, value_range=value_range)
    if loc.sounding:
        text = f"SOUNDING  max {loc.max_score:.3f} > Uth {loc.uth:.3f}"
        return stamp_caption(out, text, background=SOUNDING_BAND, opacity=0.8)
    return stamp_caption(out, loc.caption(), background=SILENT_BAND)


def _batches(
    path: Path, times: np.ndarray, size: tuple[int, int], batch_size: int
) -> Iterator[list[tuple[float, np.ndarray]]]:
    batch: list[tuple[float, np.ndarray]] = []
    for t, frame in frames_at(path, times):
        batch.append((float(t), _resize(frame, size)))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def localize_video(
    net,
    video: str | Path,
    out: str | Path,
    *,
    uth: float | None = None,
    fps: float = 10.0,
    start: float | None = None,
    end: float | None = None,
    batch_size: int = 8,
    max_side: int = 640,
    value_range: tuple[float, float] | str = (-1.0, 1.0),
    progress: Callable[[int, int], None] | None = None,
) -> VideoResult:
    """Write the heatmap video ``out`` (and its timeline files) for ``video``; see the module.

    ``progress(done, total)`` is called after each batch of output frames.
    """
    video, out = Path(video), Path(out)
    threshold = resolve_uth(net, uth)
    if not (math.isfinite(fps) and fps > 0):
        raise AvlocError(f"--fps must be a positive number, got {fps}")
    info = probe(video)
    if not info.has_audio:
        raise MediaError(f"{video}: has no audio stream to localize")
    rate = int(net.inputs["sample_rate"])
    samples = int(round(rate * float(net.inputs["clip_seconds"])))
    start = 0.0 if start is None else float(start)
    half = samples / rate / 2
    # Only the audio the windows reach: from half a clip before the first frame to half a clip
    # after the last (a whole track when the header gives no duration and no end is asked).
    until = end if end is not None else (info.duration or math.inf)
    wave, offset = load_audio_span(video, rate, max(start - half, 0.0), until + half)
    duration = info.duration or offset + len(wave) / rate
    end = duration if end is None else min(float(end), duration)
    if not (0.0 <= start < end):
        raise AvlocError(
            f"{video}: --start {start:g} / --end {end:g} leave nothing of its {duration:.2f} s"
        )
    lead = int(round(offset * rate))  # samples of the track before wave[0]
    times = output_times(start, end, fps)
    size = output_size(info.width, info.height, max_side)
    engine = MapsEngine(net)
    timeline: list[dict] = []
    stem = out.with_suffix("")
    paths = {
        "json": stem.with_name(stem.name + ".timeline.json"),
        "csv": stem.with_name(stem.name + ".timeline.csv"),
        "png": stem.with_name(stem.name + ".timeline.png"),
    }
    audio_written = int(round(start * rate)) - lead
    with VideoWriter(out, fps, size, audio_rate=rate) as writer:
        for batch in _batches(video, times, size, max(1, batch_size)):
            frames = [f for _, f in batch]
            windows = [audio_window(wave, rate, t - offset, samples) for t, _ in batch]
            specs = [engine.contract.spectrogram(w) for w in windows]
            maps = engine.maps(engine.visual(frames), engine.audio(specs))
            for (t, frame), small in zip(batch, maps, strict=True):
                heat = upsample(small[None], frame.shape[:2])[0]
                loc = Localization.from_map(heat, threshold)
                writer.write_frame(decorate(frame, loc, value_range))
                timeline.append(
                    {
                        "time": round(t, 6),
                        "sounding": loc.sounding,
                        "max_score": loc.max_score,
                        "uth": loc.uth,
                        "peak_x": loc.peak[0],
                        "peak_y": loc.peak[1],
                        "area_above_uth": loc.area_above_uth,
                    }
                )
            # the audio up to the end of this batch's last frame (frame k lasts 1 / fps)
            until = min(int(round((batch[-1][0] + 1.0 / fps) * rate)) - lead, len(wave))
            until = max(until, audio_written)
            writer.write_audio(wave[audio_written:until])
            audio_written = until
            if progress is not None:
                progress(len(timeline), len(times))
        write_timeline(timeline, paths, video=str(video), fps=fps)
        try:
            writer.commit()
        except BaseException:
            for path in paths.values():
                path.unlink(missing_ok=True)
            raise
    sounding = sum(1 for row in timeline if row["sounding"])
    return VideoResult(
        out, paths["json"], paths["csv"], paths["png"], len(timeline), sounding, timeline
    )


def write_timeline(rows: list[dict], paths: dict[str, Path], *, video: str, fps: float) -> None:
    """The timeline as JSON, CSV and a plot (each written atomically)."""
    atomic_write_json(paths["json"], {"video": video, "fps": fps, "frames": rows})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=TIMELINE_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: int(row[k]) if k == "sounding" else row[k] for k in TIMELINE_FIELDS})
    atomic_write_bytes(paths["csv"], text.getvalue().encode())
    plot_timeline(rows, paths["png"])


def plot_timeline(rows: list[dict], path: Path) -> None:
    """Score against time with Uth; the spans where avloc abstains are shaded."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    t = np.array([r["time"] for r in rows], np.float64)
    score = np.array([r["max_score"] for r in rows], np.float64)
    uth = rows[0]["uth"] if rows else 0.0
    fig, ax = plt.subplots(figsize=(8, 2.6), dpi=100)
    step = (t[1] - t[0]) if len(t) > 1 else 1.0
    for i, row in enumerate(rows):
        if not row["sounding"]:
            ax.axvspan(t[i] - step / 2, t[i] + step / 2, color="0.85", lw=0)
    ax.plot(t, score, color="tab:red", lw=1.5, label="max score")
    ax.axhline(uth, color="k", ls="--", lw=1, label=f"Uth {uth:.3f}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("max S(v, a)")
    ax.set_title("sounding where the score is above Uth; shaded: nothing visible is sounding")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
