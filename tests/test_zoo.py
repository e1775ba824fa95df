"""Published checkpoints by name (:mod:`avloc.zoo`, ``avloc import-checkpoint NAME``): downloads
from a real HTTP server on 127.0.0.1 (never the internet), full, broken off and resumed with a
Range request, and corrupted; the one-line instructions for a host that needs a browser;
``--list``; and docs/model-zoo.md's table against the code's.

The table's entry is pointed at the loopback server by ``monkeypatch.setitem`` on
:data:`avloc.zoo.CHECKPOINTS` (the hook for tests: an entry is a plain dataclass), and
``AVLOC_CACHE`` at a temporary folder.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import sys
import threading
from pathlib import Path

import pytest
from harness import ROOT
from references import DIM
from typer.testing import CliRunner

from avloc import zoo

NAME = "test-ezvsl"


class Server:
    """A loopback HTTP server of ``files`` (path -> bytes) that honours ``Range: bytes=N-``.

    ``cut``: when set, the next response sends its headers (the full Content-Length) and only
    that many body bytes, then closes the connection. ``ranges``: each request's Range header.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: int | None = None
        self.ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                wanted = self.headers.get("Range")
                server.ranges.append(wanted)
                start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1)) if wanted else 0
                if start >= len(data) and wanted:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if wanted else 200)
                if wanted:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut, server.cut = server.cut, None
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def published(server, ezvsl_file, monkeypatch, tmp_path):
    """The tiny EZ-VSL checkpoint served on 127.0.0.1 as the table's entry ``test-ezvsl``."""
    data = Path(ezvsl_file).read_bytes()
    server.files["/best.pth"] = data
    entry = zoo.Checkpoint(
        NAME, "EZ-VSL", "ezvsl", "test", "github-release", server.url("/best.pth"), "best.pth",
        sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    monkeypatch.setitem(zoo.CHECKPOINTS, NAME, entry)
    monkeypatch.setenv("AVLOC_CACHE", str(tmp_path / "cache"))
    return data


def cli(*args):
    from avloc_cli.main import app

    return CliRunner().invoke(app, ["import-checkpoint", *map(str, args)], terminal_width=200)


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("avloc:")]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def cached(tmp_path) -> Path:
    return tmp_path / "cache" / "zoo" / f"{NAME}.pth"


def test_download_and_convert(published, server, tmp_path):
    from avloc.models.io import load_network

    out = tmp_path / "models" / "x.keras"
    result = cli(NAME, "--out", out)
    assert result.exit_code == 0, result.output
    assert "sha256 verified" in result.stdout and f"-> {out}" in result.stdout
    assert cached(tmp_path).read_bytes() == published
    assert not cached(tmp_path).with_suffix(".pth.part").exists()
    assert server.ranges == [None]
    assert load_network(out).embed_dim == DIM


@pytest.mark.backend_independent  # the conversion is test_download_and_convert's, per backend
def test_a_broken_download_is_resumed_with_range(published, server, tmp_path):
    out = tmp_path / "x.keras"
    half = len(published) // 2
    server.cut = half
    line = one_error_line(cli(NAME, "--out", out))
    part = cached(tmp_path).with_suffix(".pth.part")
    assert f"broke off at {half} of {len(published)} bytes" in line and "again" in line
    assert part.stat().st_size == half and not out.exists()

    result = cli(NAME, "--out", out)
    assert result.exit_code == 0, result.output
    assert server.ranges == [None, f"bytes={half}-"]
    final = cached(tmp_path)
    assert hashlib.sha256(final.read_bytes()).hexdigest() == hashlib.sha256(published).hexdigest()
    assert not part.exists() and out.is_file()


@pytest.mark.backend_independent  # no conversion happens
def test_a_corrupted_download_is_refused_in_one_line(published, server, tmp_path):
    server.files["/best.pth"] = published[:-1] + bytes([published[-1] ^ 0xFF])
    out = tmp_path / "x.keras"
    line = one_error_line(cli(NAME, "--out", out))
    assert "SHA-256" in line and "removed" in line, line
    assert not (tmp_path / "cache" / "zoo").exists() or not any(
        (tmp_path / "cache" / "zoo").iterdir()
    )
    assert not out.exists()


@pytest.mark.backend_independent  # no Keras model is built
def test_download_resumes_a_whole_part_and_restarts_when_range_is_ignored(server, tmp_path):
    from avloc.utils.download import download, part_path

    data = bytes(range(256)) * 40
    server.files["/f.bin"] = data
    target = tmp_path / "f.bin"
    part_path(target).write_bytes(data)  # already whole: the server answers 416
    assert download(server.url("/f.bin"), target).read_bytes() == data
    assert server.ranges == [f"bytes={len(data)}-"]


@pytest.mark.backend_independent  # no download, no Keras
def test_a_browser_host_gets_one_line_of_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("AVLOC_CACHE", str(tmp_path / "cache"))
    entry = zoo.CHECKPOINTS["ezvsl-vggss144k"]
    line = one_error_line(cli("ezvsl-vggss144k"))
    assert entry.url in line and "vggsound_144k/best.pth" in line
    command = "avloc import-checkpoint best.pth --arch ezvsl --out models/ezvsl-vggss144k.keras"
    assert command in line, line
    assert not (tmp_path / "cache").exists()


@pytest.mark.backend_independent
def test_an_unknown_name_is_one_line():
    line = one_error_line(cli("ezvsl-nowhere"))
    assert "ezvsl-nowhere" in line and "--list" in line


@pytest.mark.backend_independent
def test_list_prints_every_name_and_json():
    result = cli("--list")
    assert result.exit_code == 0, result.output
    for name in zoo.CHECKPOINTS:
        assert name in result.stdout, name
    rows = json.loads(cli("--list", "--json").stdout)
    assert [r["name"] for r in rows] == list(zoo.CHECKPOINTS)
    assert {r["name"]: r["direct"] for r in rows}["rcgrad-vggsound"] is True


@pytest.mark.backend_independent
def test_the_table_is_honest():
    from avloc.evaluation.vssl_eval import PUBLISHED_UTH
    from avloc.models.import_torch import ARCHS

    assert {c.arch for c in zoo.CHECKPOINTS.values()} == set(ARCHS) - {"marginnce"}
    for c in zoo.CHECKPOINTS.values():
        assert c.name.startswith(f"{c.arch}-") and c.sha256 is None
        assert c.vssl_uth == (None if c.arch == "sslsan" else PUBLISHED_UTH.get(c.arch))
        assert c.direct == ("/releases/download/" in c.url)
    assert zoo.CHECKPOINTS["ezvsl-vggss144k"].reported["VGG-SS cIoU"] == 38.85


@pytest.mark.backend_independent
def test_the_docs_table_is_the_codes(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sys.modules.pop("zoo_table", None)
    import zoo_table

    text = zoo_table.PAGE.read_text(encoding="utf-8")
    assert zoo_table.rendered(text) == text, "run: python scripts/zoo_table.py"
    for name in zoo.CHECKPOINTS:
        assert f"`{name}`" in text


def test_the_api_loads_a_published_name_once(published, server, tmp_path):
    """``avloc.load(NAME)``: downloaded and converted into the cache the first time, the cached
    network the second (no new request); its weights are the CLI's import's, and it localizes."""
    import numpy as np

    import avloc
    from avloc.models.io import load_network

    first = avloc.load(NAME)
    assert server.ranges == [None]
    second = avloc.load(NAME)
    assert server.ranges == [None]  # nothing downloaded again
    converted = tmp_path / "cache" / "zoo" / f"{NAME}.keras"
    assert first.path == second.path == converted
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    wave = np.random.default_rng(1).uniform(-0.5, 0.5, 16000).astype(np.float32)
    got = first.localize(image, wave, sample_rate=16000, uth=0.5).heatmap
    out = tmp_path / "cli.keras"
    assert cli(NAME, "--out", out).exit_code == 0
    weights = load_network(out).get_weights()
    assert len(weights) == len(first.keras_model.get_weights())
    for want, have in zip(weights, first.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(have, want)
    assert got.shape == (40, 48) and np.isfinite(got).all()
