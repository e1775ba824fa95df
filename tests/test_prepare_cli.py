"""The ``avloc prepare`` commands: one per registered source, offering the options its class
declares and passing each on by name; a run's summary, and ``avloc prepare inspect`` (its
contact sheet draws the boxes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from prepare_harness import tone, write_jpeg, write_wav
from typer.testing import CliRunner

from avloc.data.sources import preparer_names
from avloc_cli.main import app

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

# --------------------------------------------------------------------------------------------
# One command per source
# --------------------------------------------------------------------------------------------


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
# CLI summary and inspect
# --------------------------------------------------------------------------------------------


def test_cli_summary_and_inspect_draws_the_boxes(tmp_path):
    root = tmp_path / "vggss"
    entries = []
    for i, cls in enumerate(["dog", "cat", "dog"]):
        name = f"v{i}_000000"
        write_jpeg(root / "frames" / f"{name}.jpg", np.zeros((60, 80, 3), np.uint8))
        write_wav(root / "audio" / f"{name}.wav", tone(300 + 200 * i, 4.0))
        entries.append({"file": name, "class": cls, "bbox": [[0.403125, 0.253125, 0.6, 0.75]]})
    entries.append({"file": "gone_000000", "class": "cat", "bbox": [[0, 0, 1, 1]]})
    (root / "vggss.json").write_text(json.dumps(entries))
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["prepare", "vggss", "--root", str(root), "--annotations", str(root / "vggss.json")]
        + ["--out", str(out), "--workers", "1"],
    )
    assert result.exit_code == 0, result.output
    # The entry whose media are not on disk is left out at planning, named by its file.
    assert "3 of 3 samples in 1 shard(s)" in result.output
    assert "skipped 1 broken input(s)" in result.output and "samples/s" in result.output
    report = (out / "report.tsv").read_text()
    assert "gone_000000" in report and str(root / "frames" / "gone_000000.jpg") in report

    png = tmp_path / "sheet.png"
    result = runner.invoke(app, ["prepare", "inspect", str(out), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "3 samples in 1 shard(s)" in result.output and "ground_truth=boxes" in result.output
    assert "classes: 2 with samples: dog 2, cat 1" in result.output
    assert (
        "offscreen_audio" in result.output and "inputs skipped at preparation: 1" in result.output
    )
    sheet = np.asarray(Image.open(png).convert("RGB")).astype(int)
    # The first tile (224 px, black image): its box's left edge at x = 0.403125 * 224 = 90.3.
    edge = sheet[60:160, 88:93]
    red = (edge[..., 0] > 200) & (edge[..., 1] < 100) & (edge[..., 2] < 100)
    assert red.any(axis=1).all()
    inside = sheet[60:160, 100:130]
    assert inside.max() < 30  # the image itself is black
