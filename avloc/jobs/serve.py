"""``avloc serve``: a local web demo (Gradio) of one network: upload, look, read the verdict.

Two tabs, each a thin page over the functions below, which hold everything the page shows and
are tested without a browser:

- **Image + audio** (:func:`analyse_pair`): an image file and an audio file (or a video for its
  audio) -> the overlay PNG of ``avloc localize`` (``uint8`` RGB ``(H, W, 3)`` at the image's
  own size: heatmap on the cosine scale -1..1, the above-Uth region outlined, a caption when
  nothing is sounding), the verdict line (score against Uth) and the JSON record of
  ``avloc localize --json``.
- **Video** (:func:`analyse_video`): a video with sound -> the heatmap video (H.264 + AAC) with
  its timeline plot and files, as ``avloc localize VIDEO -o out.mp4`` writes them, into a fresh
  folder under the demo's work directory; at most ``max_seconds`` of the video from its start.

Errors in uploads (an unreadable file, a wrong kind of file, a video without sound) come back as
a one-line message in the page, naming the uploaded file by its own name, never as a crash.
Model calls run one at a time (Gradio's ``concurrency_limit=1``): the network is shared.

Bounded work and disk: uploads larger than ``max_upload_mb`` (:data:`MAX_UPLOAD_MB`) are refused
by Gradio before they land; images over :data:`avloc.media.image.MAX_IMAGE_PIXELS` are refused
from their header; audio is decoded around the clip and videos only for ``max_seconds``. The
demo's uploads (Gradio's cache) and heatmap videos live in one work folder: a request's uploads
are removed when it ends (with the empty stub Gradio's ``File`` makes per upload), a video
request's outputs when the next one starts (the page has its own copies by then), a failed
request's at once, the copies Gradio keeps for the page after :data:`OUTPUT_KEEP_S`, and the
whole folder when the server stops (``benchmarks/demo_hostile.py`` measures all of it).

Gradio is an optional dependency (``pip install 'avloc[demo]'``); it is imported only by
:func:`build_app`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avloc.errors import AvlocError
from avloc.jobs.localize import localize_pair, render, resolve_uth
from avloc.media.formats import IMAGE_EXTS, VIDEO_EXTS
from avloc.media.items import Item, load_item

__all__ = ["DemoResult", "analyse_pair", "analyse_video", "build_app", "DEFAULT_HOST"]

DEFAULT_HOST = "127.0.0.1"  #: loopback only: nothing outside this machine can reach the page
#: The largest upload the demo takes, MB (``avloc serve --max-upload-mb``): a 10-minute phone
#: video; Gradio refuses larger files before they are written to disk.
MAX_UPLOAD_MB = 100.0


#: How long the page's outputs (overlays, heatmap videos) stay in Gradio's cache, s: the page
#: fetches them at once; Gradio's ``delete_cache`` removes older ones every
#: :data:`OUTPUT_SWEEP_S` seconds, so the cache holds about an hour of requests, not all of them.
OUTPUT_KEEP_S = 3600
OUTPUT_SWEEP_S = 600
#: Empty ``tmp*`` files this old in the uploads folder are removed after each request (see
#: :func:`_remove_stubs`), s.
STUB_AGE_S = 10.0


def _remove_stubs(folder: str | Path, older_than: float = STUB_AGE_S) -> None:
    """Remove the empty ``tmp*`` files that Gradio's ``File`` leaves in its cache, one per upload.

    Gradio 6's ``File.preprocess`` opens a ``NamedTemporaryFile(delete=False)`` in the cache for
    every uploaded file and never writes or removes it. Only empty files at least ``older_than``
    seconds old go: an upload being received (also ``tmp*`` there) has bytes within moments.
    """
    import time

    now = time.time()
    for path in Path(folder).glob("tmp*"):
        try:
            info = path.lstat()
            if path.is_file() and info.st_size == 0 and now - info.st_mtime >= older_than:
                path.unlink()
        except OSError:
            pass


def _remove_uploads(*paths: str | Path | None) -> None:
    """Remove uploaded files (and the one-file folders Gradio puts each in) after a request."""
    for path in paths:
        if not path:
            continue
        path = Path(path)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()  # only when empty
        except OSError:
            pass


@dataclass
class DemoResult:
    """What the page shows for one request; ``error`` set means only the message is shown."""

    verdict: str  #: one line (Markdown): the decision and the score against Uth, or the error
    overlay: np.ndarray | None = None  #: uint8 (H, W, 3), image + audio tab
    record: dict[str, Any] = field(default_factory=dict)  #: localize's JSON fields
    video: str | None = None  #: heatmap MP4 path, video tab
    timeline_png: str | None = None
    timeline_files: list[str] = field(default_factory=list)  #: timeline JSON and CSV
    error: str | None = None


def _upload_name(path: str | Path) -> str:
    return Path(path).name


def _failure(exc: BaseException, uploads: list[str | Path | None]) -> DemoResult:
    """A one-line message that names uploads by their own names, not the server's temp paths."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    for path in uploads:
        if path:
            message = message.replace(os.fspath(path), _upload_name(path))
    if not isinstance(exc, AvlocError):
        message = f"could not process the upload ({type(exc).__name__}: {message})"
    return DemoResult(verdict=f"**Error:** {message}", error=message)


def _verdict(loc) -> str:
    if loc.sounding:
        return f"**Sounding.** {loc.caption()}"
    return f"**Nothing visible is sounding.** {loc.caption()}"


def analyse_pair(net, uth: float, image: str | Path | None, audio: str | Path | None) -> DemoResult:
    """Localise the sound of ``audio`` in ``image`` (paths of uploaded files); see the module.

    ``audio`` may also be a video file (its audio track, around its middle).
    """
    try:
        if not image or not audio:
            raise AvlocError("upload an image and an audio file, then press Localize")
        image, audio = Path(image), Path(audio)
        if image.suffix.lower() not in IMAGE_EXTS:
            raise AvlocError(
                f"{image}: not an image file name (expected one of {', '.join(sorted(IMAGE_EXTS))})"
            )
        loaded = load_item(Item(name=image.stem, image=image, audio=audio), net.inputs)
        loc = localize_pair(net, loaded.image, loaded.wave, uth=uth)
        record = {"image": image.name, "audio": audio.name, **loc.to_dict()}
        return DemoResult(verdict=_verdict(loc), overlay=render(loaded.image, loc), record=record)
    except Exception as exc:  # every failure is a message in the page
        return _failure(exc, [image, audio])


def analyse_video(
    net,
    uth: float,
    video: str | Path | None,
    work_dir: str | Path,
    *,
    fps: float = 10.0,
    max_seconds: float = 60.0,
) -> DemoResult:
    """The heatmap video of the first ``max_seconds`` of ``video``; see the module."""
    from avloc.jobs.video import localize_video

    try:
        if not video:
            raise AvlocError("upload a video with sound, then press Localize")
        video = Path(video)
        if video.suffix.lower() not in VIDEO_EXTS:
            raise AvlocError(
                f"{video}: not a video file name (expected one of {', '.join(sorted(VIDEO_EXTS))})"
            )
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        for old in Path(work_dir).glob("video-*"):  # earlier requests': the page has copies
            shutil.rmtree(old, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(prefix="video-", dir=work_dir))
        out = folder / f"{video.stem}_heat.mp4"
        try:
            result = localize_video(net, video, out, uth=uth, fps=fps, end=max_seconds)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        silent = result.frames - result.sounding_frames
        verdict = (
            f"**{result.sounding_frames} of {result.frames} frames sounding**, {silent} with "
            f"nothing visible sounding (Uth {uth:.3f}; {fps:g} frames/s"
            + (f", first {max_seconds:g} s" if result.timeline[-1]["time"] >= max_seconds else "")
            + ")"
        )
        return DemoResult(
            verdict=verdict,
            video=str(result.video),
            timeline_png=str(result.timeline_png),
            timeline_files=[str(result.timeline_json), str(result.timeline_csv)],
            record={"frames": result.frames, "sounding_frames": result.sounding_frames},
        )
    except Exception as exc:
        return _failure(exc, [video])


def build_app(
    net,
    uth: float | None = None,
    *,
    title: str = "avloc",
    work_dir: str | Path | None = None,
    max_seconds: float = 60.0,
):
    """The Gradio ``Blocks`` page for ``net`` (Uth: ``uth`` or the network's calibration).

    ``work_dir`` (default: a fresh ``avloc-serve-*`` temporary folder) holds the heatmap videos
    and, under ``uploads/``, Gradio's cache of uploads (``GRADIO_TEMP_DIR``); remove it when the
    server stops (:func:`serve`).
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="avloc-serve-"))
    os.environ["GRADIO_TEMP_DIR"] = str(work / "uploads")
    try:
        import gradio as gr
    except ImportError:
        raise AvlocError(
            "the web demo needs Gradio: pip install 'avloc[demo]' (or pip install gradio)"
        ) from None

    threshold = resolve_uth(net, uth)

    def on_pair(image, audio):
        try:
            r = analyse_pair(net, threshold, image, audio)
        finally:
            _remove_uploads(image, audio)
            _remove_stubs(work / "uploads")
        return r.overlay, r.verdict, r.record

    def on_video(video, fps):
        try:
            r = analyse_video(net, threshold, video, work, fps=float(fps), max_seconds=max_seconds)
        finally:
            _remove_uploads(video)
            _remove_stubs(work / "uploads")
        return r.video, r.timeline_png, r.verdict, r.timeline_files or None

    with gr.Blocks(
        title=title, analytics_enabled=False, delete_cache=(OUTPUT_SWEEP_S, OUTPUT_KEEP_S)
    ) as page:
        gr.Markdown(
            f"# {title}: where in the picture is the sound coming from?\n"
            f"The map is the cosine similarity of each image region with the sound. Above the "
            f"universal threshold **Uth = {threshold:.3f}** something visible is sounding; "
            f"below it everywhere, the model abstains (silence, noise, an offscreen sound)."
        )
        with gr.Tab("Image + audio"):
            with gr.Row():
                with gr.Column():
                    image_in = gr.File(label="Image (png, jpg, ...)", elem_id="image-input")
                    audio_in = gr.File(
                        label="Audio (wav, flac, mp3, ... or a video's sound)",
                        elem_id="audio-input",
                    )
                    pair_button = gr.Button("Localize", variant="primary", elem_id="pair-run")
                with gr.Column():
                    overlay = gr.Image(
                        label="Heatmap (cosine -1..1; outline: above Uth)",
                        type="numpy",
                        format="png",
                        interactive=False,
                        elem_id="overlay",
                    )
                    pair_verdict = gr.Markdown(elem_id="pair-verdict")
                    details = gr.JSON(label="Details (as avloc localize --json)")
            pair_button.click(
                on_pair, [image_in, audio_in], [overlay, pair_verdict, details],
                concurrency_limit=1, concurrency_id="model",
            )  # fmt: skip
        with gr.Tab("Video"):
            with gr.Row():
                with gr.Column():
                    video_in = gr.File(
                        label="Video with sound (mp4, mov, ...)", elem_id="video-input"
                    )
                    fps_in = gr.Number(value=10, minimum=1, maximum=30, label="Frames per second")
                    video_button = gr.Button("Localize", variant="primary", elem_id="video-run")
                    gr.Markdown(f"At most the first {max_seconds:g} s of a video are processed.")
                with gr.Column():
                    video_out = gr.Video(label="Heatmap video", elem_id="heatmap-video")
                    timeline = gr.Image(
                        label="Score against Uth over time (shaded: abstains)",
                        type="filepath",
                        interactive=False,
                        elem_id="timeline",
                    )
                    video_verdict = gr.Markdown(elem_id="video-verdict")
                    timeline_files = gr.File(label="Timeline (JSON, CSV)", file_count="multiple")
            video_button.click(
                on_video, [video_in, fps_in], [video_out, timeline, video_verdict, timeline_files],
                concurrency_limit=1, concurrency_id="model",
            )  # fmt: skip
    page.avloc_work_dir = work
    return page


def serve(page, *, max_upload_mb: float = MAX_UPLOAD_MB, **launch) -> None:
    """Run ``page`` (:func:`build_app`) until it is stopped (Ctrl+C, SIGTERM), uploads capped at
    ``max_upload_mb``; its work folder (uploads, heatmap videos) is removed when it stops."""
    import signal

    work = getattr(page, "avloc_work_dir", None)

    def stop(signum, frame):  # SIGTERM: the same clean-up as Ctrl+C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        page.queue().launch(max_file_size=f"{max_upload_mb:g}mb", **launch)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        try:
            page.close()
        except Exception:
            pass
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
