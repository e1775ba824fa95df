"""Run the quickstart once per training seed and write the per-seed table of its verdicts.

Usage: python scripts/quickstart_seeds.py [--seeds 0,1,2,3,4] [--work runs/quickstart-seeds]
                                          [--out docs/results/quickstart-seeds]

Each seed K runs ``scripts/quickstart.sh WORK/seed-K --set seed=K``: the README's first command
with only the training seed changed (the data and the visual trunk are the same for every seed;
the first run prepares them, the others find them). A seed whose evaluation is already in WORK is
read, not trained again, so an interrupted run goes on where it stopped. Writes ``OUT.md`` (a
table a person reads) and ``OUT.json`` (the same numbers), and prints the table.

Columns: the quickstart's checks (avloc.evaluation.verdict: adaptive cIoU@0.5 in %, its
shuffled-audio control in %, pIA in % of the image, Sep in cosine units), whether the seed passes
(every required check), the first epoch whose contrastive loss (the recipe's first loss term,
``loss_<term>`` in log.csv) is at least 5 % below the first epoch's, i.e. when the run left its
starting plateau, and the quickstart's wall time in seconds (data and trunk already there).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from avloc.evaluation.verdict import judge, learned

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python3 scripts/quickstart_seeds.py"


def run_seed(seed: int, work: Path, term: str) -> dict:
    """Run (or read) the quickstart of one seed; its verdict, loss curve and wall time."""
    run = work / f"seed-{seed}"
    results = run / "eval" / "results.json"
    timing = run / "quickstart-seconds.txt"
    if not results.is_file():
        start = time.perf_counter()
        env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "torch"))
        cmd = ["scripts/quickstart.sh", str(run), "--set", f"seed={seed}"]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        timing.write_text(f"{time.perf_counter() - start:.0f}\n")
    metrics = json.loads(results.read_text())["models"][0]["metrics"]
    outcomes = judge(metrics)
    return {
        "seed": seed,
        "passed": learned(outcomes),
        "checks": {o.check.metric: round(o.value, 4) for o in outcomes},
        "required_failed": [o.check.name for o in outcomes if o.check.required and not o.passed],
        "loss": loss_curve(run / "log.csv", f"loss_{term}"),
        "seconds": float(timing.read_text()) if timing.is_file() else None,
    }


def loss_curve(log: Path, column: str) -> list[float]:
    with log.open(newline="") as f:
        return [round(float(row[column]), 4) for row in csv.DictReader(f) if row.get(column)]


def contrastive_term() -> str:
    """The quickstart recipe's first loss term (``ezvsl``, ``lvs``, ...)."""
    from avloc.config import load_recipe

    return next(iter(load_recipe(ROOT / "recipes" / "quickstart.toml").loss))


def left_plateau(curve: list[float]) -> int | None:
    """The first epoch (1-based) whose loss is at least 5 % below epoch 1's; None if none is."""
    return next((i + 1 for i, v in enumerate(curve) if curve and v <= 0.95 * curve[0]), None)


def render(rows: list[dict], term: str) -> str:
    metrics = list(rows[0]["checks"])
    head = ["seed", *metrics, "passes", "loss 5 % below epoch 1 (epoch)", "wall time (s)"]
    lines = [
        "# The quickstart over training seeds",
        "",
        f"Written by `{COMMAND}`; do not edit by hand. Each seed runs `scripts/quickstart.sh "
        "runs/quickstart-seeds/seed-K --set seed=K` (same data, same visual trunk).",
        "",
        f"**{sum(r['passed'] for r in rows)} of {len(rows)} seeds pass** every required check "
        "(adaptive cIoU@0.5 >= 40, Sep >= 0.3; the control, silence and noise lines are "
        "required too, offscreen pIA is a goal).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cells = [str(r["seed"])]
        cells += ["n/a" if math.isnan(v) else f"{v:.2f}" for v in r["checks"].values()]
        cells.append("yes" if r["passed"] else "no (" + ", ".join(r["required_failed"]) + ")")
        epoch = left_plateau(r["loss"])
        cells.append("never" if epoch is None else str(epoch))
        cells.append("n/a" if r["seconds"] is None else f"{r['seconds']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    values = {m: [r["checks"][m] for r in rows] for m in metrics}
    lines += [
        "",
        "Spread over seeds (min - max): "
        + "; ".join(f"{m} {min(v):.2f} - {max(v):.2f}" for m, v in values.items())
        + ".",
        "",
        f"`loss_{term}` per epoch:",
        "",
    ]
    lines += [f"- seed {r['seed']}: " + " ".join(f"{v:.3f}" for v in r["loss"]) for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma list of training seeds")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "quickstart-seeds")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "quickstart-seeds")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.work.mkdir(parents=True, exist_ok=True)
    term = contrastive_term()
    rows = [run_seed(seed, args.work, term) for seed in seeds]
    text = render(rows, term)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text, encoding="utf-8")
    payload = {"command": COMMAND, "loss_term": term, "seeds": rows}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
