"""The loss-term registry (avloc.losses): names, typed terms built from a recipe's ``[loss]``
table, one-line errors for bad arguments, and ``start_epoch`` on every term."""

from __future__ import annotations

import pytest

from avloc.errors import RecipeError
from avloc.losses import LOSS_TERMS, build_terms
from avloc.losses.contrastive import MILContrastive


def test_registry_names():
    assert {"ezvsl", "silence_map", "noise_map"} <= set(LOSS_TERMS.names())


def test_registry_builds_typed_terms():
    terms = build_terms(
        {"ezvsl": {"weight": 1, "tau": 0.07, "margin": -0.2}, "silence_map": {"weight": 2}}
    )
    assert list(terms) == ["ezvsl", "silence_map"]
    assert isinstance(terms["ezvsl"], MILContrastive)
    assert terms["ezvsl"].tau == 0.07 and terms["ezvsl"].margin == -0.2
    assert isinstance(terms["ezvsl"].weight, float)  # int accepted for float, converted
    assert terms["silence_map"].weight == 2.0


@pytest.mark.parametrize(
    "loss, fragment",
    [
        ({"ezvsl": {"temperature": 0.1}}, "loss.ezvsl.temperature: unknown key"),
        ({"silence_map": {"tau": 0.1}}, "loss.silence_map.tau: unknown key"),
        ({"ezvsl": {"tau": "small"}}, "loss.ezvsl.tau: expected float, got str"),
        ({"ezvsl": {"silence_negative": 1}}, "loss.ezvsl.silence_negative: expected bool"),
        ({"noise_map": {"weight": True}}, "loss.noise_map.weight: expected float, got bool"),
        ({"noise_map": {"weight": [1.0]}}, "loss.noise_map.weight: expected float, got list"),
        ({"silence": {"weight": 1.0}}, "loss.silence: unknown loss term 'silence'"),
    ],
)
def test_registry_rejects_bad_kwargs(loss, fragment):
    with pytest.raises(RecipeError) as info:
        build_terms(loss)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_registry_rejects_empty_loss():
    with pytest.raises(RecipeError, match="loss"):
        build_terms({})


def test_new_terms_are_registered_with_start_epoch():
    assert {"fnac_fns1", "fnac_fns2", "fnac_tne", "lvs"} <= set(LOSS_TERMS.names())
    terms = build_terms(
        {
            "ezvsl": {"start_epoch": 0},
            "fnac_tne": {"weight": 50, "start_epoch": 2, "threshold": 0.5},
            "lvs": {"epsilon": 0.6, "hard_negative": False},
            "silence_map": {"start_epoch": 1},
        }
    )
    assert terms["fnac_tne"].weight == 50.0 and terms["fnac_tne"].start_epoch == 2
    assert terms["fnac_tne"].threshold == 0.5
    assert terms["lvs"].epsilon == 0.6 and terms["lvs"].hard_negative is False
    assert terms["silence_map"].start_epoch == 1 and terms["ezvsl"].start_epoch == 0
    with pytest.raises(RecipeError, match="loss.fnac_fns1.start_epoch: expected int"):
        build_terms({"fnac_fns1": {"start_epoch": 1.5}})
    with pytest.raises(RecipeError, match="loss.lvs.temperature: unknown key"):
        build_terms({"lvs": {"temperature": 0.07}})


def test_every_temperature_and_weight_has_a_recipe_range():
    """config.LOSS_RANGES covers every term's ``weight`` and ``*tau`` argument, defaults inside."""
    from avloc.config import LOSS_RANGES

    for name in LOSS_TERMS.names():
        for key, param in LOSS_TERMS.parameters(name).items():
            if key == "weight" or key.endswith("tau"):
                assert key in LOSS_RANGES, f"loss.{name}.{key} has no range"
                assert LOSS_RANGES[key][0](param.default), f"loss.{name}.{key} default"
