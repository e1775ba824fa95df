"""``avloc serve`` fed hostile uploads: the server's peak resident memory per request and the
files it leaves behind after it stops.

    KERAS_BACKEND=torch python3 -m benchmarks.demo_hostile --json demo_hostile.json   # ~2 min

Writes a random-weight network (``--model test``: the serve tests' width-4 network on 32 px;
``tiny``, ``full``: as ``benchmarks.localize``) and the media below, starts a real
``avloc serve --checkpoint NET --port P`` (a free loopback port) in a fresh process, and drives
it with ``gradio_client`` as a browser would (upload, then the tab's button), one case after
another:

- ``bomb png``: a 19 KB PNG of 12500 x 12500 pixels (under Pillow's hard limit) with a 2 s WAV;
  expected: refused from its header;
- ``30 min m4a``: a 640x480 PNG with a 30-minute AAC ``.m4a`` (48 kHz); expected: an overlay;
- ``200 MB upload``: a 200 MB ``.wav`` (``--upload-mb``) against ``--max-upload-mb`` 100;
  expected: refused by the size cap (HTTP 413) before it lands;
- ``normal pair``: the PNG and the 2 s WAV; expected: an overlay;
- ``long video``: a ``--video-minutes`` (30) 64x48 H.264 + AAC video on the Video tab;
  expected: the heatmap video of its first ``--max-video-seconds`` (60).

The server's environment points every place it may write at fresh folders: ``TMPDIR`` (its
``avloc-serve-*`` work folder and anything else it puts in the temp dir), ``GRADIO_TEMP_DIR``,
``AVLOC_CACHE`` and its working directory. Its memory is read from ``/proc/PID/status``
(psutil where there is no ``/proc``): ``VmRSS`` sampled every ``--interval`` s all along, and
per case ``VmHWM`` (the kernel's own high-water mark, reset before each case through
``/proc/PID/clear_refs``, so no peak falls between two samples). Then the server is stopped
(``--signal``: SIGTERM as a service manager sends, or SIGINT as Ctrl+C does) and every file
left in those folders is listed.

Columns: ``case``; ``outcome`` (``ok``, ``refused`` with the page's message or the HTTP status);
``as expected``; ``seconds`` (the request, uploads included); ``peak RSS MB`` (the server
process's high-water mark during the case); ``after MB`` (its RSS when the case is done);
``temp files``, ``temp MB``: what is in the server's temp dir (``TMPDIR``) after the case.
Only the server process is measured (its children, none on these cases, are listed if any).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.processes import ROOT

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
#: The server's environment starts from this one, taken before this process imports a
#: framework: torch sets variables on import (its inductor cache folder under the temp dir,
#: for one) that would otherwise point the server outside its fresh folders.
BASE_ENV = dict(os.environ)

#: The issue's bound on the demo's resident memory (issue 36), MB.
BOUND_MB = 1536.0
#: The serve tests' network (tests/test_serve.py), as ``--model test``.
TEST_NET = dict(
    embed_dim=8,
    visual=dict(width=4),
    audio=dict(width=4),
    inputs={"image_size": 32, "sample_rate": 16000, "clip_seconds": 1.0},
)


# ------------------------------------------------------------------------------------------
# The server's memory


def _status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` now, MB (``VmRSS``; psutil where there is no /proc)."""
    kb = _status_kb(pid, "VmRSS")
    if kb is not None:
        return kb / 1024
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except Exception:
        return None


def hwm_mb(pid: int) -> float | None:
    """The kernel's high-water mark of ``pid``'s resident memory, MB (``VmHWM``)."""
    kb = _status_kb(pid, "VmHWM")
    return None if kb is None else kb / 1024


def reset_hwm(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS (``clear_refs`` 5, Linux 4.0+); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (``/proc/PID/task/*/children``)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


class Sampler(threading.Thread):
    """``VmRSS`` of the server every ``interval`` s: the run's maximum and the current case's."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples = 0
        self.run_max = self.case_max = 0.0
        self.child_pids: set[int] = set()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            value = rss_mb(self.pid)
            if value is not None:
                self.samples += 1
                self.run_max = max(self.run_max, value)
                self.case_max = max(self.case_max, value)
            self.child_pids.update(children(self.pid))
            self._done.wait(self.interval)

    def new_case(self) -> None:
        self.case_max = rss_mb(self.pid) or 0.0

    def stop(self) -> None:
        self._done.set()
        self.join()


# ------------------------------------------------------------------------------------------
# Inputs and the server


def make_network(kind: str, path: Path) -> Path:
    import keras

    from avloc.models import AudioVisualNet
    from avloc.models.io import save_network
    from avloc.runtime import configure
    from benchmarks.localize import MODELS

    spec = TEST_NET if kind == "test" else MODELS[kind]
    configure(spec)
    keras.utils.set_random_seed(0)
    net = AudioVisualNet(**spec, calibration={"uth": 0.25, "statistic": "benchmark"}, name="avnet")
    return save_network(net, path)


def make_media(folder: Path, upload_mb: float, video_minutes: float) -> dict[str, Path]:
    """The uploads of the cases (see the module), written into ``folder``."""
    import numpy as np
    import soundfile
    from PIL import Image

    if str(ROOT / "tests") not in sys.path:  # tests/ is not a package: imported as pytest does
        sys.path.append(str(ROOT / "tests"))
    from fakemedia import tone_pattern, write_m4a, write_video

    media = {name: folder / name for name in ("bomb.png", "scene.png", "tone.wav", "long.m4a")}
    Image.new("1", (12500, 12500)).save(media["bomb.png"])  # 19 KB, 470 MB decoded as RGB
    pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(media["scene.png"])
    soundfile.write(media["tone.wav"], tone_pattern(2.0, 16000), 16000)
    write_m4a(media["long.m4a"], 1800.0, rate=48000)
    media["big.wav"] = folder / "big.wav"
    with open(media["big.wav"], "wb") as big:  # sparse: costs no disk here, all bytes on the wire
        big.truncate(int(upload_mb * 1e6))
    if video_minutes > 0:
        media["long.mp4"] = folder / "long.mp4"
        write_video(
            media["long.mp4"], seconds=video_minutes * 60, fps=2, size=(64, 48),
            audio_rate=16000, crf=30,
        )  # fmt: skip
    return media


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(checkpoint: Path, port: int, places: dict[str, Path], args) -> subprocess.Popen:
    paths = [*filter(None, BASE_ENV.get("PYTHONPATH", "").split(os.pathsep)), str(ROOT)]
    env = dict(
        BASE_ENV,
        PYTHONPATH=os.pathsep.join(paths),
        TMPDIR=str(places["tmp"]),
        GRADIO_TEMP_DIR=str(places["gradio"]),
        AVLOC_CACHE=str(places["cache"]),
        GRADIO_ANALYTICS_ENABLED="False",
    )
    command = [
        sys.executable, "-m", "avloc_cli.main", "serve", "--checkpoint", str(checkpoint),
        "--port", str(port), "--max-upload-mb", f"{args.max_upload_mb:g}",
        "--max-video-seconds", f"{args.max_video_seconds:g}",
    ]  # fmt: skip
    log = open(places["log"], "w")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(command, cwd=places["cwd"], env=env, stdout=log, stderr=log)


def wait_until_up(proc: subprocess.Popen, url: str, log: Path, timeout: float = 180) -> float:
    import urllib.request

    start = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"avloc serve exited early: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"avloc serve did not answer within {timeout:g} s")
        time.sleep(0.3)


def leftovers(places: dict[str, Path]) -> dict[str, list[str]]:
    """Every file and folder left under the server's temp dirs, cache and working directory."""
    out = {}
    for key in ("tmp", "gradio", "cache", "cwd"):
        root = places[key]
        out[key] = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    return out


def folder_size(root: Path) -> tuple[int, float]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files) / 1e6


# ------------------------------------------------------------------------------------------
# The cases


def one_line(text: str, limit: int = 0) -> str:
    """``text`` on one line, without Markdown's bold, cut at ``limit`` characters (0: whole)."""
    text = " ".join(str(text).replace("**", "").split())
    return text if not limit or len(text) <= limit else text[: limit - 3] + "..."


def cases(media: dict[str, Path]) -> list[dict]:
    """Each case: name, endpoint, inputs, what is expected (a word of the outcome, a phrase)."""
    out = [
        dict(case="bomb png", api="/on_pair", files=["bomb.png", "tone.wav"],
             expect=("refused", "refused before decoding")),
        dict(case="30 min m4a", api="/on_pair", files=["scene.png", "long.m4a"],
             expect=("ok", "Uth")),
        dict(case="200 MB upload", api="upload", files=["big.wav"], expect=("refused", "413")),
        dict(case="normal pair", api="/on_pair", files=["scene.png", "tone.wav"],
             expect=("ok", "Uth")),
    ]  # fmt: skip
    if "long.mp4" in media:
        out.append(
            dict(case="long video", api="/on_video", files=["long.mp4"], extra=[10],
                 expect=("ok", "frames sounding"))
        )  # fmt: skip
    return out


def raw_upload(url: str, path: Path) -> tuple[str, str]:
    """POST ``path`` to Gradio's upload route as a browser or a script would (gradio_client
    refuses a file over the cap itself, before sending it), streamed from the file."""
    import httpx

    try:
        with open(path, "rb") as body:
            response = httpx.post(url, files={"files": (path.name, body)}, timeout=120)
    except httpx.HTTPError as exc:  # the server may close the connection on a refused upload
        return "refused", one_line(f"connection closed ({type(exc).__name__}: {exc})")
    text = one_line(f"HTTP {response.status_code}: {response.text}")
    return ("ok" if response.status_code == 200 else "refused"), text


def run_case(client, case: dict, media: dict[str, Path]) -> tuple[str, str]:
    """``(outcome, message)`` of one request: ``ok``/``refused`` and the page's verdict line or
    the upload's HTTP error."""
    from gradio_client import handle_file

    if case["api"] == "upload":
        return raw_upload(client.upload_url, media[case["files"][0]])
    inputs = [handle_file(str(media[name])) for name in case["files"]] + case.get("extra", [])
    try:
        result = client.predict(*inputs, api_name=case["api"])
    except Exception as exc:  # the upload refused (HTTP 413) or the request failed
        text = one_line(f"{type(exc).__name__}: {exc}")
        return ("refused" if "413" in text or "maximum allowed size" in text else "failed"), text
    verdict = result[1] if case["api"] == "/on_pair" else result[2]
    return ("refused" if verdict.startswith("**Error:**") else "ok"), one_line(verdict, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("test", "tiny", "full"), default="test")
    parser.add_argument("--upload-mb", type=float, default=200.0, help="the oversized upload")
    parser.add_argument("--max-upload-mb", type=float, default=100.0, help="the server's cap")
    parser.add_argument("--max-video-seconds", type=float, default=60.0)
    parser.add_argument("--video-minutes", type=float, default=30.0, help="0: no video case")
    parser.add_argument("--signal", choices=("term", "int"), default="term", help="stops it")
    parser.add_argument("--interval", type=float, default=0.05, help="RSS sampling period, s")
    parser.add_argument("--work", help="keep the inputs and the server's folders here")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from benchmarks.machine import machine_info, print_machine
    from benchmarks.report import print_progress, print_table, settings, write_json

    with tempfile.TemporaryDirectory(prefix="avloc-bench-") as tmp:
        work = Path(args.work or tmp)
        places = {key: work / key for key in ("tmp", "gradio", "cache", "cwd")}
        for folder in [work / "inputs", *places.values()]:
            folder.mkdir(parents=True, exist_ok=True)
        places["log"] = work / "server.log"
        start = time.monotonic()
        checkpoint = make_network(args.model, work / "inputs" / "net.keras")
        media = make_media(work / "inputs", args.upload_mb, args.video_minutes)
        print_progress(f"inputs written in {time.monotonic() - start:.1f} s")

        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        proc = start_server(checkpoint, port, places, args)
        sampler = Sampler(proc.pid, args.interval)
        sampler.start()
        rows, results = [], []
        try:
            up_s = wait_until_up(proc, url, places["log"])
            startup = {"seconds": up_s, "rss_mb": rss_mb(proc.pid), "peak_mb": hwm_mb(proc.pid)}
            print_progress(f"server up in {up_s:.1f} s, {startup['rss_mb']:.0f} MB resident")
            from gradio_client import Client

            client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
            for case in cases(media):
                reset = reset_hwm(proc.pid)
                sampler.new_case()
                t0 = time.monotonic()
                outcome, message = run_case(client, case, media)
                seconds = time.monotonic() - t0
                time.sleep(3 * args.interval)  # a last sample after the reply
                peak = max(sampler.case_max, (hwm_mb(proc.pid) or 0.0) if reset else 0.0)
                temp_files, temp_mb = folder_size(places["tmp"])
                word, phrase = case["expect"]
                expected = outcome == word and phrase in message
                entry = {
                    "case": case["case"], "files": case["files"], "outcome": outcome,
                    "message": message, "as_expected": expected, "seconds": seconds,
                    "peak_rss_mb": peak, "after_rss_mb": rss_mb(proc.pid),
                    "peak_from": "VmHWM" if reset else "samples",
                    "temp_files": temp_files, "temp_mb": temp_mb,
                    "temp_paths": leftovers(places)["tmp"],
                }  # fmt: skip
                results.append(entry)
                rows.append([case["case"], outcome, "yes" if expected else "NO", seconds, peak,
                             entry["after_rss_mb"], temp_files, temp_mb])  # fmt: skip
                print_progress(f"{case['case']}: {outcome}, peak {peak:.0f} MB")
            client.close()
            running = dict(zip(("files", "mb"), folder_size(places["tmp"]), strict=True))
            run_peak = max(hwm_mb(proc.pid) or 0.0, sampler.run_max, startup["peak_mb"] or 0.0)
        finally:
            sampler.stop()
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM if args.signal == "term" else signal.SIGINT)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            stop_s = time.monotonic() - t0
        left = leftovers(places)
        log_tail = places["log"].read_text().strip().splitlines()[-5:]

    # torch's own per-user cache folder, made by importing torch (by every avloc command on the
    # torch backend, not by the demo), and avloc's network cache are listed apart
    torch_own = [n for n in left["tmp"] if n.split("/")[0].startswith("torchinductor_")]
    left["tmp"] = [n for n in left["tmp"] if n not in torch_own]
    n_left = sum(len(v) for k, v in left.items() if k != "cache")
    print(
        f"\navloc serve fed hostile uploads: {args.model} network, --max-upload-mb "
        f"{args.max_upload_mb:g}, --max-video-seconds {args.max_video_seconds:g}, stopped with "
        f"SIG{args.signal.upper()}:"
    )
    headers = ["case", "outcome", "as expected", "seconds", "peak RSS MB", "after MB"]
    print_table([*headers, "temp files", "temp MB"], rows)
    for entry in results:
        print(f"  {entry['case']}: {one_line(entry['message'], 96)}")
    print(
        f"server: up in {startup['seconds']:.1f} s at {startup['rss_mb']:.0f} MB (start-up peak "
        f"{startup['peak_mb']:.0f} MB); peak over the run {run_peak:.0f} MB (bound "
        f"{BOUND_MB:.0f}: {'held' if run_peak < BOUND_MB else 'EXCEEDED'}); "
        f"{sampler.samples} samples; children seen: {len(sampler.child_pids)}"
    )
    print(
        f"temp dir while running (after the cases): {running['files']} files, "
        f"{running['mb']:.1f} MB; stopped in {stop_s:.1f} s, exit {code}"
    )
    print(f"left behind after it stopped (temp dirs, working directory): {n_left} entries")
    for key, names in left.items():
        for name in names if key != "cache" else ():
            print(f"  {key}/{name}")
    print(f"torch's inductor cache folder (made by import torch): {', '.join(torch_own) or '-'}")
    cached = [name for name in left["cache"] if "." in Path(name).name]
    print(f"avloc's network cache (AVLOC_CACHE, kept by design): {', '.join(cached) or 'empty'}")
    if code != 0 and log_tail:
        print("server log tail: " + " | ".join(log_tail))
    machine = machine_info()
    print_machine(machine)
    write_json(
        args.json,
        {
            "settings": settings(args),
            "results": results,
            "server": {
                "startup": startup, "peak_rss_mb": run_peak, "bound_mb": BOUND_MB,
                "held": run_peak < BOUND_MB, "samples": sampler.samples,
                "children": sorted(sampler.child_pids), "running_temp": running,
                "stop_seconds": stop_s, "exit_code": code,
            },
            "left_behind_count": n_left,
            "torch_cache_folder": torch_own,
            "left_behind": left,
            "machine": machine,
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
