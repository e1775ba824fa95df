"""The Python API (avloc/api.py, docs/api.md): the doc's examples run, and the API gives the map
``avloc localize`` gives, bit for bit.

Doc examples: every ```python block of docs/api.md runs, in order, in a folder laid out as the
doc's paths say (the convention: the doc names files, this test makes them, nothing is
substituted): ``runs/quickstart/model.keras`` (a tiny calibrated network), ``photo.jpg`` (a
generated scene, 53 x 37), ``sound.wav`` (a mono float32 tone at 44.1 kHz, so it is resampled)
and ``recipes/`` (a link to the repository's). ``avloc.jobs.train.train`` and
``avloc.jobs.evaluate.evaluate`` are replaced by recorders there: the API's own steps run (recipe
loading and checks, model resolution, output checks), the minutes of training do not.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from localize_harness import scene, tiny_net, tone
from PIL import Image
from typer.testing import CliRunner

import avloc
from avloc.errors import AvlocError, DataError, MediaError
from avloc.jobs import localize as lz
from avloc.media.image import load_image
from avloc.models.io import save_network

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"
UTH = 0.1


def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The folder docs/api.md's paths refer to (see the module docstring)."""
    d = tmp_path_factory.mktemp("api")
    (d / "runs" / "quickstart").mkdir(parents=True)
    net = tiny_net(calibration={"uth": UTH, "statistic": "test"})
    save_network(net, d / "runs" / "quickstart" / "model.keras")
    net.calibration = None
    save_network(net, d / "uncalibrated.keras")
    Image.fromarray(scene(37, 53)).save(d / "photo.jpg", quality=90)
    sf.write(d / "sound.wav", tone(2.5, stereo=False), 44100, subtype="FLOAT")
    (d / "recipes").symlink_to(ROOT / "recipes")
    avloc.load(d / "runs" / "quickstart")  # a first load (on torch it caches the fast copy)
    return d


@pytest.fixture(scope="module")
def loc(workspace):
    return avloc.load(workspace / "runs" / "quickstart")


# ------------------------------------------------------------------------------------------
# docs/api.md


@pytest.mark.parametrize("index", range(len(doc_blocks())))
def test_the_doc_examples_run(index, workspace, monkeypatch, capsys):
    import avloc.jobs.evaluate as ev
    import avloc.jobs.train as jobs_train

    calls = {}

    def fake_train(recipe, run_dir, verbose=None):
        calls["train"] = (recipe, Path(run_dir))
        return SimpleNamespace(model_path=Path(run_dir) / "model.keras")

    def fake_evaluate(sources, dataset, out_dir, **kwargs):
        calls["evaluate"] = ([s.name for s in sources], dataset, Path(out_dir))
        return SimpleNamespace(out_dir=Path(out_dir))

    monkeypatch.setattr(jobs_train, "train", fake_train)
    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    monkeypatch.chdir(workspace)
    code = doc_blocks()[index]
    exec(compile(code, f"{DOC}, python block {index + 1}", "exec"), {"__name__": "__doc__"})
    assert capsys.readouterr().out  # every example prints something
    if "avloc.train(" in code:
        recipe, run_dir = calls["train"]
        assert run_dir == Path("runs/tiny") and recipe.train.epochs == 1
        assert recipe.model.visual.width == 4 and recipe.data.train == "data/tiny/train"
        assert calls["evaluate"] == (["quickstart"], "data/tiny/test", Path("evaluations/tiny"))
        assert sorted(p.name for p in Path("data/tiny/train").glob("*.h5"))


def test_the_doc_is_linked():
    assert "(api.md)" in (ROOT / "docs" / "README.md").read_text()
    assert "(docs/api.md)" in (ROOT / "README.md").read_text()


# ------------------------------------------------------------------------------------------
# the same map as `avloc localize`


@pytest.mark.parametrize("torch_infer", ["1", "0"], ids=["default", "keras-only"])
def test_the_cli_and_the_api_give_the_same_map(workspace, tmp_path, monkeypatch, torch_infer):
    """``avloc localize IMAGE AUDIO --checkpoint FILE --raw --json`` and ``avloc.load(FILE)``:
    the same heatmap (np.array_equal), record and PNG pixels. ``AVLOC_TORCH_INFER`` picks the
    network copy for both alike (the default: the Keras-free one on torch once cached)."""
    from avloc_cli.main import app

    monkeypatch.setenv("AVLOC_TORCH_INFER", torch_infer)
    model = workspace / "runs" / "quickstart" / "model.keras"
    photo, sound = workspace / "photo.jpg", workspace / "sound.wav"
    png = tmp_path / "cli.png"
    args = ["localize", str(photo), str(sound), "--checkpoint", str(model), "-o", str(png)]
    result = CliRunner().invoke(app, [*args, "--raw", "--json"])
    assert result.exit_code == 0, result.output
    record = __import__("json").loads(result.stdout.strip().splitlines()[-1])

    api = avloc.load(model).localize(photo, sound)
    assert np.array_equal(api.heatmap, np.load(png.with_suffix(".npy")))
    for key, value in api.to_dict().items():
        assert record[key] == value, key
    api.save(tmp_path / "api.png")
    assert np.array_equal(load_image(tmp_path / "api.png"), load_image(png))
    assert np.array_equal(api.overlay(), load_image(png))


def test_the_api_runs_the_jobs_localize_pair(loc, workspace):
    """And its own loop equals the job's (avloc.jobs.localize.localize_pair) on the same net."""
    image = load_image(workspace / "photo.jpg")
    wave = lz.load_item(
        lz.item_from_paths([workspace / "photo.jpg", workspace / "sound.wav"]), loc.inputs
    ).wave
    want = lz.localize_pair(loc._net, image, wave)
    got = loc.localize(image, wave, sample_rate=loc.inputs["sample_rate"])
    assert np.array_equal(got.heatmap, want.heatmap)
    assert got.to_dict() == want.to_dict()
    assert got.raw_map.shape == (4, 4) and got.raw_map.dtype == np.float32
    # aligned-corner upsampling: the corners are the network's, nothing exceeds its maximum
    corners = np.ix_([0, -1], [0, -1])
    np.testing.assert_allclose(got.heatmap[corners], got.raw_map[corners], atol=1e-6)
    assert got.score <= got.raw_map.max() + 1e-6


# ------------------------------------------------------------------------------------------
# inputs


def test_arrays_pil_images_and_paths_give_the_same_map(loc, workspace):
    photo, sound = workspace / "photo.jpg", workspace / "sound.wav"
    want = loc.localize(photo, sound)
    assert want.heatmap.shape == (37, 53) and want.heatmap.dtype == np.float32
    image = np.asarray(Image.open(photo).convert("RGB"))
    wave, rate = sf.read(sound, dtype="float32")
    assert rate == 44100  # resampled to the network's 16 kHz on both paths
    for image_in, audio_in, kw in [
        (image, wave, {"sample_rate": rate}),
        (Image.open(photo), sound, {}),
        (str(photo), wave.astype(np.float64), {"sample_rate": float(rate)}),
    ]:
        got = loc.localize(image_in, audio_in, **kw)
        assert np.array_equal(got.heatmap, want.heatmap)
    # a stereo waveform is refused (avloc mixes files; an array is the caller's)
    with pytest.raises(MediaError):
        loc.localize(image, np.stack([wave, wave], 1), sample_rate=rate)


def test_a_batch_equals_one_by_one(loc, workspace):
    wave, rate = sf.read(workspace / "sound.wav", dtype="float32")
    images = [scene(37, 53, seed=s) for s in range(3)] + [workspace / "photo.jpg"]
    audios = [wave, np.zeros_like(wave), wave[: rate // 3], wave]
    batch = loc.localize_batch(images, audios, sample_rate=rate, batch_size=3)
    assert len(batch) == 4
    for image, audio, got in zip(images, audios, batch, strict=True):
        one = loc.localize(image, audio, sample_rate=rate)
        np.testing.assert_allclose(got.heatmap, one.heatmap, rtol=0, atol=1e-6)
        assert got.sounding == one.sounding
    assert [r.to_dict() for r in loc.localize_batch(images[:1], audios[:1], sample_rate=rate)] == [
        loc.localize(images[0], audios[0], sample_rate=rate).to_dict()
    ]


def _bad_inputs(workspace):
    photo, sound = workspace / "photo.jpg", workspace / "sound.wav"
    wave = np.zeros(8000, np.float32)
    return {
        "missing image": (workspace / "nope.jpg", sound, {}),
        "missing audio": (photo, workspace / "nope.wav", {}),
        "text as audio": (photo, ROOT / "README.md", {}),
        "float image": (np.zeros((8, 8, 3), np.float32), sound, {}),
        "grey array": (np.zeros((8, 8), np.uint8), sound, {}),
        "image list": ([[0, 0, 0]], sound, {}),
        "no rate": (photo, wave, {}),
        "zero rate": (photo, wave, {"sample_rate": 0}),
        "fractional rate": (photo, wave, {"sample_rate": 16000.5}),
        "int samples": (photo, np.zeros(8000, np.int16), {"sample_rate": 16000}),
        "empty wave": (photo, np.zeros(0, np.float32), {"sample_rate": 16000}),
        "rate with a file": (photo, sound, {"sample_rate": 16000}),
        "audio number": (photo, 3.0, {}),
        "bad uth": (photo, sound, {"uth": float("nan")}),
    }


@pytest.mark.parametrize("case", list(_bad_inputs(Path("."))))
def test_bad_inputs_are_one_line_errors(loc, workspace, case):
    image, audio, kw = _bad_inputs(workspace)[case]
    with pytest.raises(AvlocError) as caught:
        loc.localize(image, audio, **kw)
    message = str(caught.value)
    assert message and "\n" not in message and len(message) < 300, message


def test_a_batch_of_unequal_lists_is_refused(loc, workspace):
    with pytest.raises(MediaError, match="2 images but 1 audio"):
        loc.localize_batch([workspace / "photo.jpg"] * 2, [workspace / "sound.wav"])


# ------------------------------------------------------------------------------------------
# loading


def test_load_names_the_path_it_cannot_use(workspace, tmp_path):
    (tmp_path / "empty-run").mkdir()
    (tmp_path / "notes.txt").write_text("hello\n")
    cases = {
        tmp_path / "missing": "no such run directory or .keras file",
        tmp_path / "missing.keras": "no such checkpoint file",
        tmp_path / "empty-run": "no model.keras in this run directory",
        tmp_path / "notes.txt": "not a run directory or a .keras file",
    }
    for path, words in cases.items():
        with pytest.raises(DataError) as caught:
            avloc.load(path)
        assert str(caught.value).startswith(f"{path}: ") and words in str(caught.value)


def test_a_network_without_uth_loads_and_needs_uth(workspace):
    path = workspace / "uncalibrated.keras"
    loc = avloc.load(path)
    assert loc.uth is None
    with pytest.raises(DataError, match="no calibrated universal threshold") as caught:
        loc.localize(workspace / "photo.jpg", workspace / "sound.wav")
    assert f"avloc eval --calibrate --checkpoint {path}" in str(caught.value)
    result = loc.localize(workspace / "photo.jpg", workspace / "sound.wav", uth=0.0)
    assert result.uth == 0.0 and result.sounding == (result.score > 0.0)


def test_keras_model_and_the_contract(loc):
    from avloc.models import AudioVisualNet

    assert isinstance(loc.keras_model, AudioVisualNet)
    assert loc.keras_model is loc.keras_model
    assert loc.inputs == {"image_size": 64, "sample_rate": 16000, "clip_seconds": 1.0}
    assert loc.uth == pytest.approx(UTH)


def test_the_jobs_refuse_in_one_line(tmp_path):
    from avloc.errors import RecipeError

    with pytest.raises(AvlocError) as caught:
        avloc.train(tmp_path / "missing.toml")
    assert "\n" not in str(caught.value) and "missing.toml" in str(caught.value)
    with pytest.raises(RecipeError, match="--protocol"):
        avloc.evaluate("data", runs=[tmp_path], protocol="other")
    with pytest.raises(AvlocError, match="--part"):
        avloc.prepare("synthetic", tmp_path / "out", part="3/2")


def test_avloc_exports_the_api_lazily():
    code = (
        "import sys, avloc; assert 'avloc.api' not in sys.modules; "
        "assert 'load' in dir(avloc); f = avloc.load; "
        "assert 'avloc.api' in sys.modules and 'keras' not in sys.modules; "
        "print(f.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "avloc.api", out.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        avloc.nothing  # noqa: B018
