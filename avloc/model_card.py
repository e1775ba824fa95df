"""``MODEL_CARD.md`` of a preset, generated from its ``metadata.json`` (:mod:`avloc.presets`).

:func:`render` is a pure function of the metadata (without its ``files`` entry, which lists the
card's own checksum): Markdown with, in order, the model's name and description, how to load it,
its training data (the recipe's ``data.train`` / ``data.test``), its input contract, its Uth and
how it was chosen (the calibration record), the negative-audio table of every evaluation
(cIoU at Uth, pIA under silence / noise / offscreen audio, Sep; docs/protocol.md) or "not
evaluated", the recipe as TOML, and the network file's sha256.
"""

from __future__ import annotations

from typing import Any

NEGATIVES = ("silence", "noise", "offscreen")


def _number(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _get(tree: Any, *keys: str) -> Any:
    for key in keys:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def calibration_text(uth: float, calibration: dict[str, Any]) -> list[str]:
    """How Uth was chosen, in words, then the calibration's distributions."""
    audio = " + ".join(calibration.get("audio") or []) or "calibration"
    lines = [
        f"**Uth = {uth:.6f}** (cosine units): a pair is *sounding* when its map's maximum "
        "exceeds Uth; otherwise avloc abstains (nothing visible is making the sound).",
        "",
        f"Chosen without labels as the **{calibration.get('statistic', '?')}** of the map "
        f"maxima of {calibration.get('samples', '?')} calibration images under {audio} audio, "
        f"on `{calibration.get('data', '?')}` (avloc's calibration, docs/protocol.md).",
    ]
    quartiles = [(k[: -len("_max")], v) for k, v in calibration.items() if k.endswith("_max")]
    if quartiles:
        lines += ["", "| calibration audio | q1 | median | q3 |", "|---|---|---|---|"]
        for name, q in sorted(quartiles):
            cells = [_number(_get(q, k), 4) for k in ("q1", "median", "q3")]
            lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def evaluation_text(evaluation: Any, uth: float) -> list[str]:
    """The negative-audio table, one row per evaluation; "Not evaluated" without one. A row
    scored at another threshold than the preset's ``uth`` says so."""
    if not isinstance(evaluation, list) or not evaluation:
        return [
            "Not evaluated: `avloc eval --dataset DATA --run RUN --out RUN/eval` before "
            "`avloc export` puts the results here."
        ]
    lines = [
        "At each evaluation's Uth (docs/protocol.md): cIoU x 100 and cIoU@0.5 % (higher is "
        "better); pIA, the % of the image above Uth under silence, noise or offscreen audio "
        "(lower is better; 0 abstains everywhere); Sep, Q1 of the positive maxima minus Q3 of "
        "the negative maxima, cosine units (higher is better).",
        "",
        "| data set | samples | Uth | cIoU | cIoU@0.5 | pIA silence | pIA noise "
        "| pIA offscreen | Sep |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in evaluation:
        m = row.get("metrics") or {}
        used = _number(row.get("uth"), 4)
        if row.get("uth_source") not in (None, "calibration"):
            used += f" ({row['uth_source']})"
        if row.get("uth") != uth:
            used += " (not the preset's Uth)"
        cells = [
            str(row.get("dataset") or "?"),
            str(row.get("samples", "?")),
            used,
            _number(_get(m, "positive", "universal", "ciou_mean"), 1),
            _number(_get(m, "positive", "universal", "ciou_at_05"), 1),
            *(_number(_get(m, n, "pia"), 1) for n in NEGATIVES),
            _number(_get(m, "global", "sep"), 4),
        ]
        lines.append(f"| {' | '.join(cells)} |")
    lines.append("")
    lines.append("From " + ", ".join(f"`{row.get('results')}`" for row in evaluation) + ".")
    for row in evaluation:
        for condition, why in sorted((row.get("absent") or {}).items()):
            lines.append(f"- {condition}: not measured ({why})")
    return lines


def render(meta: dict[str, Any], model_sha256: str) -> str:
    """The card's Markdown for preset metadata ``meta`` and its network's checksum."""
    recipe = meta.get("recipe") or {}
    data = recipe.get("data") or {}
    name = meta.get("name", "avloc model")
    lines = [f"# Model card: {name}", ""]
    if recipe.get("description"):
        lines += [str(recipe["description"]), ""]
    lines += [
        f"An avloc preset (visual sound source localization with abstention), exported by avloc "
        f"{meta.get('avloc_version')} on {meta.get('created')}. Use it from this folder:",
        "",
        "```",
        "avloc localize IMAGE AUDIO --model THIS_FOLDER -o heat.png",
        "python -c \"import avloc; print(avloc.load('THIS_FOLDER'))\"",
        "```",
        "",
        "## Training data",
        "",
        f"- recipe `{recipe.get('name', '?')}`, seed {recipe.get('seed', '?')}",
        f"- trained on the shards `{data.get('train') or '?'}`",
        f"- test shards named by the recipe: `{data.get('test') or '-'}`",
        "",
        "## Input contract",
        "",
        "| input | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in sorted((meta.get("inputs") or {}).items())]
    lines += ["", "## Abstention threshold (Uth)", ""]
    lines += calibration_text(meta["uth"], meta.get("calibration") or {})
    lines += ["", "## Negative audio", ""]
    lines += evaluation_text(meta.get("evaluation"), meta["uth"])
    lines += ["", "## Recipe", "", "```toml", str(meta.get("recipe_toml", "")).rstrip(), "```"]
    lines += [
        "",
        "## Files",
        "",
        f"- `model.keras`: sha256 `{model_sha256}`",
        "- `metadata.json`: everything above as data, and the sha256 of every other file; "
        "avloc checks them all before it loads the network",
        "",
    ]
    return "\n".join(lines)
