"""``scripts/quickstart_seeds.py``: the committed per-seed page is its JSON rendered, and the
plateau epoch is read as documented."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results" / "quickstart-seeds"


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sys.modules.pop("quickstart_seeds", None)
    import quickstart_seeds

    return quickstart_seeds


@pytest.mark.backend_independent
def test_the_page_is_its_json_rendered(script):
    data = json.loads(PAGE.with_suffix(".json").read_text())
    assert data["loss_term"] == script.contrastive_term()
    assert script.render(data["seeds"], data["loss_term"]) == PAGE.with_suffix(".md").read_text()
    passed = sum(row["passed"] for row in data["seeds"])
    assert f"**{passed} of {len(data['seeds'])} seeds pass**" in PAGE.with_suffix(".md").read_text()


@pytest.mark.backend_independent
def test_the_plateau_is_left_at_the_first_epoch_five_percent_below_the_first(script):
    assert script.left_plateau([7.0, 6.9, 6.6, 6.0]) == 3  # 95 % of 7.0 is 6.65
    assert script.left_plateau([7.0, 6.9, 6.8]) is None
    assert script.left_plateau([]) is None
