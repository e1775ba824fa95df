"""The documentation check: what avloc prints and writes is defined in the docs it ships.

- every key of ``results.json`` that the scorer writes is listed in ``docs/protocol.md``;
- every option and argument of every ``avloc`` command has help text;
- no help text cites a document that does not ship (``SPEC``, or a ``docs/`` file that is
  missing);
- flags show as flags in help (no ``<bool>``).
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from harness import ROOT, random_records

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

DOCS = ROOT / "docs"


def _leaves(tree: dict, path: tuple[str, ...] = ()):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*path, key))
        else:
            yield (*path, key)


def test_every_results_key_is_defined_in_the_protocol_doc():
    from avloc.evaluation.scoring import score_records

    n = 6
    mask = np.zeros((n, 20, 20), np.uint8)
    mask[:, 5:15, 5:15] = 1
    records = random_records(
        n=n, rule="mask", mask=mask, groups=np.array(["a", "a", "b", "b", "c", "c"])
    )
    keys = {path[-1] for path in _leaves(score_records(records, 0.3).metrics)}
    assert {"ciou_at_05", "pia", "sep", "a2i_instance_R@1", "fscore", "iiou"} <= keys
    text = (DOCS / "protocol.md").read_text()
    documented = set(re.findall(r"`([^`]+)`", text))
    for key in documented.copy():  # `a2i_instance_R@k` stands for k = 1, 5, 10
        if key.endswith("_R@k"):
            documented |= {key[:-1] + k for k in ("1", "5", "10")}
    missing = sorted(keys - documented)
    assert not missing, f"results.json keys not in docs/protocol.md: {missing}"


def _commands():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import typer

    from avloc_cli.main import app

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), command

    return list(walk(typer.main.get_command(app), ["avloc"]))


def test_every_cli_option_has_help_and_cites_only_shipped_docs():
    commands = _commands()
    assert len(commands) >= 10
    for name, command in commands:
        texts = [command.help or ""]
        for param in command.params:
            help_text = getattr(param, "help", None)
            assert help_text, f"{name} {'/'.join(param.opts)}: no help text"
            texts.append(help_text)
        assert (command.epilog or "").startswith("Example: avloc "), f"{name}: no example"
        for text in texts:
            assert "SPEC" not in text, f"{name}: help cites SPEC, which does not ship: {text!r}"
            for cited in re.findall(r"docs/[\w./-]+\.md", text):
                assert (ROOT / cited).is_file(), f"{name}: help cites {cited}, which is missing"


def test_help_shows_flags_as_flags():
    from typer.testing import CliRunner

    from avloc_cli.main import app

    runner = CliRunner()
    for args in (["localize", "--help"], ["eval", "--help"], ["train", "--help"]):
        result = runner.invoke(app, args, env={"COLUMNS": "120", "KERAS_BACKEND": "torch"})
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output, result.output
        assert "--help" in result.output


def test_every_relative_link_in_the_readme_and_docs_resolves():
    pages = [ROOT / "README.md", *DOCS.glob("*.md"), ROOT / "benchmarks" / "README.md"]
    broken = []
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_readme_is_a_front_page_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert 'python3 -m pip install -e ".[dev]" && scripts/quickstart.sh' in text
    assert "scripts/test.sh" in text and "docs/" in text
