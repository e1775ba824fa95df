"""What a miniature reproduction trains: rows (method or ablation row) -> jobs (one training each).

A :class:`Row` names a recipe under ``recipes/synthetic/`` and where it appears in the report
(the methods table, the ablation table, or both). A :class:`Job` is one training run: rows whose
resolved recipes have the same objective, model, data and schedule (``name`` and
``description`` aside) share a job, so ablation row 1 *is* the SSL-TIE run and row 7 *is* the
SSL-SaN run, trained once per seed.

:class:`Budget` holds the settings every row shares (data sizes, epochs, widths, seeds, and the
overrides that apply them); ``Budget.full()`` is the one-hour setting of the report,
``Budget.quick()`` the seconds-long structural check used by the test suite.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from avloc.config import Recipe, load_recipe
from avloc.recipe_checks import check_recipe

#: Where the synthetic twins live, relative to the project root.
RECIPE_DIR = Path(__file__).resolve().parents[3] / "recipes" / "synthetic"


@dataclass(frozen=True)
class Row:
    key: str  #: short identifier, used for file names ("ezvsl", "ablation-3")
    label: str  #: as printed in the report ("EZ-VSL", "S + L_S")
    recipe: str  #: path relative to recipes/synthetic/
    methods: bool = False  #: a row of the methods table
    ablation: tuple[bool, bool, bool, bool] | None = None  #: (S, N, L_S, L_N) in the ablation


#: The report's rows, in print order.
ROWS: tuple[Row, ...] = (
    Row("ezvsl", "EZ-VSL", "ezvsl.toml", methods=True),
    Row("marginnce", "marginNCE", "marginnce.toml", methods=True),
    Row("fnac", "FNAC", "fnac.toml", methods=True),
    Row("ssltie", "SSL-TIE", "ssltie.toml", methods=True),
    Row("sslsan", "SSL-SaN", "sslsan.toml", methods=True),
    Row("ezvsl_san", "SSL-SaN on EZ-VSL", "ezvsl_san.toml", methods=True),
    Row("ablation-1", "none", "ablation/1_none.toml", ablation=(False, False, False, False)),
    Row("ablation-2", "S", "ablation/2_s.toml", ablation=(True, False, False, False)),
    Row("ablation-3", "S + L_S", "ablation/3_s_ls.toml", ablation=(True, False, True, False)),
    Row("ablation-4", "N", "ablation/4_n.toml", ablation=(False, True, False, False)),
    Row("ablation-5", "N + L_N", "ablation/5_n_ln.toml", ablation=(False, True, False, True)),
    Row("ablation-6", "S + N", "ablation/6_s_n.toml", ablation=(True, True, False, False)),
    Row("ablation-7", "S + N + L_S + L_N", "ablation/7_s_n_ls_ln.toml", ablation=(True,) * 4),
)


@dataclass(frozen=True)
class Budget:
    """Settings shared by every row: the same data, model size, schedule and seeds."""

    train_samples: int  #: synthetic training scenes
    test_samples: int  #: synthetic test scenes (each with an offscreen clip)
    data_seed: int = 0  #: seed of the synthetic scenes
    seeds: tuple[int, ...] = (0,)  #: training seeds; every row is trained once per seed
    overrides: tuple[str, ...] = ()  #: recipe overrides applied to every row (``key=value``)
    #: overrides of the visual trunk's pretraining (recipes/synthetic/visual_trunk.toml)
    trunk_overrides: tuple[str, ...] = ()

    @staticmethod
    def full() -> Budget:
        """The report's setting. With the EZ-VSL family alone it took 43 min of wall time on 2
        CPU cores (two jobs at a time); an SSL-TIE-family training takes about twice an EZ-VSL
        one (docs/results/synthetic-notes.md, section 10), so about 150 min of job time now.

        Five training seeds per row, so that a row is judged on its typical run rather than on
        which seed happens to leave chance first; the pretrained visual trunk lets every row
        learn in 6 epochs of 1,000 scenes.
        """
        return Budget(
            train_samples=1000,
            test_samples=300,
            seeds=(0, 1, 2, 3, 4),
            overrides=("train.epochs=6", "train.tensorboard=false"),
        )

    @staticmethod
    def quick() -> Budget:
        """A structural check in seconds: tiny data, width 4, a few steps."""
        return Budget(
            train_samples=24,
            test_samples=16,
            overrides=(
                "train.epochs=1",
                "train.batch_size=8",
                "train.backup_every_steps=1000",
                "train.tensorboard=false",
                "model.embed_dim=32",  # the lvs architecture: 8 x the width
                "model.visual.width=4",
                "model.audio.width=4",
                "data.image_size=64",
                "data.train_resize=70",
                "data.workers=1",
                "eval.calibration_samples=16",
                "eval.batch_size=16",
            ),
            trunk_overrides=(
                "data.images=48",
                "data.validation=16",
                "data.shift=2",
                "train.epochs=1",
                "train.batch_size=16",
            ),
        )

    def with_overrides(self, extra: list[str] | tuple[str, ...]) -> Budget:
        return dataclasses.replace(self, overrides=(*self.overrides, *extra))


@dataclass
class Job:
    """One training run (one resolved recipe and seed) and the rows it stands for."""

    key: str  #: run folder name: first row's key + seed ("ezvsl-s0")
    recipe: Recipe
    seed: int
    rows: list[Row] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"key": self.key, "seed": self.seed, "rows": [r.key for r in self.rows]}


def objective_fingerprint(recipe: Recipe) -> str:
    """Hash of everything that changes training (the recipe without name and description).

    Each loss term's keys are completed with the term's defaults, so a switch written as its
    default (``silence_negative = false``) and one left out make the same objective."""
    import inspect

    from avloc.losses.base import LOSS_TERMS

    plain = dataclasses.asdict(recipe)
    plain.pop("name", None)
    plain.pop("description", None)
    for name, kwargs in plain["loss"].items():
        for key, param in LOSS_TERMS.parameters(name).items():
            if param.default is not inspect.Parameter.empty:
                kwargs.setdefault(key, param.default)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


#: The pretrained visual trunk every twin starts from, inside the data folder.
TRUNK_NAME = "visual_trunk.pth"

#: The pretraining recipe of that trunk (``avloc pretrain``).
TRUNK_RECIPE = RECIPE_DIR / "visual_trunk.toml"


def data_overrides(data_dir: Path) -> list[str]:
    return [
        f"data.train={data_dir / 'train'}",
        f"data.test={data_dir / 'test'}",
        f"model.visual.pretrained={data_dir / TRUNK_NAME}",
    ]


def trunk_overrides(budget: Budget, recipe_dir: Path = RECIPE_DIR) -> list[str]:
    """Pretraining overrides that make its trunk fit the twins' ``model.visual`` and image size."""
    twin = load_recipe(recipe_dir / ROWS[0].recipe, list(budget.overrides))
    v = twin.model.visual
    return [
        f"model.visual.width={v.width}",
        f"model.visual.blocks={list(v.blocks)}",
        f"model.visual.stem_pool={str(v.stem_pool).lower()}",
        f"data.image_size={twin.data.image_size}",
        *budget.trunk_overrides,
    ]


def plan_jobs(
    budget: Budget,
    data_dir: Path,
    rows: tuple[Row, ...] = ROWS,
    recipe_dir: Path = RECIPE_DIR,
) -> list[Job]:
    """Resolve every row's recipe under ``budget`` and group identical ones into jobs."""
    jobs: list[Job] = []
    by_print: dict[tuple[str, int], Job] = {}
    for seed in budget.seeds:
        for row in rows:
            overrides = [*budget.overrides, *data_overrides(data_dir), f"seed={seed}"]
            recipe = check_recipe(load_recipe(recipe_dir / row.recipe, overrides), row.recipe)
            key = (objective_fingerprint(recipe), seed)
            if key not in by_print:
                by_print[key] = Job(key=f"{row.key}-s{seed}", recipe=recipe, seed=seed)
                jobs.append(by_print[key])
            by_print[key].rows.append(row)
    return jobs


def job_of(jobs: list[Job], row: Row, seed: int) -> Job:
    return next(j for j in jobs if j.seed == seed and row in j.rows)
