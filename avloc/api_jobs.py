"""``avloc.train``, ``avloc.evaluate``, ``avloc.prepare``: the jobs ``avloc train``, ``avloc eval``
and ``avloc prepare`` run, called with the arguments those commands pass (cli/*.py).

They return the jobs' own results (:class:`avloc.jobs.train.TrainResult`,
:class:`avloc.jobs.evaluate.EvalResult`, :class:`avloc.data.prepare.PrepareResult` or, for the
synthetic source, ``{split: [shard paths]}``) and print no summary; errors are the one-line
:class:`avloc.errors.AvlocError` the commands print. Paths are files and folders as on the
command line; numbers carry the options' units (seconds, samples, Hz).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from avloc.errors import AvlocError, DataError, RecipeError

PathLike = str | os.PathLike


def _paths(value: PathLike | Sequence[PathLike] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [Path(value)]
    return [Path(v) for v in value]


def train(
    recipe_path: PathLike,
    run_dir: PathLike | None = None,
    overrides: Sequence[str] = (),
    *,
    devices: int | None = None,
):
    """``avloc train RECIPE [--run-dir DIR] [--set KEY=VALUE ...] [--devices N]`` in this process.

    ``run_dir`` defaults to ``runs/<recipe name>``; running it again resumes from the last backup.
    Several torch devices need one process each: use the command for that.
    """
    from avloc.config import load_recipe
    from avloc.recipe_checks import check_recipe
    from avloc.runtime import configure
    from avloc.runtime.distribute import prepare_host, torchrun_command

    sets = [overrides] if isinstance(overrides, str) else list(overrides)
    if devices is not None:
        sets.append(f"distribute.devices={devices}")
    first = load_recipe(recipe_path, sets)
    prepare_host(first.distribute.devices)
    configure(first)
    loaded = check_recipe(load_recipe(recipe_path, sets), recipe_path)
    if torchrun_command(loaded.distribute.devices, []) is not None:
        raise AvlocError(
            f"{recipe_path}: distribute.devices = {loaded.distribute.devices} under torch needs "
            "one process per device: run `avloc train` from the command line"
        )
    from avloc.jobs.train import train as run_training

    return run_training(loaded, Path(run_dir) if run_dir else Path("runs") / loaded.name)


def evaluate(
    dataset: PathLike | None = None,
    *,
    runs: PathLike | Sequence[PathLike] | None = None,
    checkpoints: PathLike | Sequence[PathLike] | None = None,
    samples: PathLike | Sequence[PathLike] | None = None,
    out: PathLike | None = None,
    uth: float | None = None,
    protocol: str = "avloc",
    control: str | None = None,
    metrics: str | Sequence[str] | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    seed: int = 0,
    overlays: int = 4,
    data_root: PathLike | None = None,
    floors: bool = True,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
):
    """``avloc eval --dataset DATA --run DIR ... [--out DIR]`` (``--calibrate`` is not here yet).

    ``out`` defaults to ``evaluations/<data set>`` (``-vssl_eval`` appended for that protocol);
    ``progress(label, total)`` returns a function called with each count of samples done.
    """
    from avloc.jobs import evaluate as ev

    if protocol not in ("avloc", "vssl_eval"):
        raise RecipeError(f"--protocol {protocol!r}: expected one of avloc, vssl_eval")
    if protocol == "vssl_eval" and (control or metrics):
        flag = "--control" if control else "--metrics"
        raise RecipeError(f"{flag} belongs to avloc's protocol, not --protocol vssl_eval")
    sources = ev.resolve_models(_paths(runs), _paths(checkpoints), _paths(samples))
    if out is None:
        name = Path(dataset).name if dataset else "saved"
        out = Path("evaluations") / (f"{name}-vssl_eval" if protocol == "vssl_eval" else name)
    ev.EvalOutputs(Path(out)).check(sources, protocol)
    common = dict(uth=uth, batch_size=batch_size, limit=limit, seed=seed)
    common.update(data_root_dir=data_root, progress=progress, floors=floors)
    if protocol == "vssl_eval":
        from avloc.jobs.evaluate_vssl import evaluate_vssl

        if dataset is None:
            raise DataError("--protocol vssl_eval needs --dataset")
        return evaluate_vssl(sources, dataset, out, **common)
    if isinstance(metrics, str):  # the command's comma list
        metrics = [g.strip() for g in metrics.split(",") if g.strip()]
    return ev.evaluate(
        sources, dataset, out, control=control, metric_groups=metrics, overlays=overlays, **common
    )


def prepare(
    source: str,
    out: PathLike,
    *,
    workers: int = 1,
    shard_size: int | None = None,
    part: str = "1/1",
    progress: Callable[..., None] | None = None,
    **options: Any,
):
    """``avloc prepare SOURCE --out DIR [options]``: ``options`` are the command's options with
    ``_`` for ``-`` (``avloc prepare SOURCE --help`` lists them), e.g.
    ``prepare("synthetic", "data/synthetic", train=64, test=16, image_size=64)``.

    ``progress``: ``progress(done, total)`` for corpus sources, ``progress(n)`` (samples just
    written) for ``synthetic``, which also takes no ``workers``. ``shard_size`` defaults to the
    command's.
    """
    from avloc.data.prepare import parse_part
    from avloc.data.prepare import prepare as run_prepare

    which = parse_part(part)
    if source == "synthetic":
        from avloc.data.prepare_synthetic import SyntheticSource, prepare_synthetic

        if shard_size is None:
            shard_size = inspect.signature(prepare_synthetic).parameters["shard_size"].default
        return SyntheticSource(**options).prepare(
            out, shard_size=shard_size, part=which, progress=progress
        )
    from avloc.data.sources import build_preparer

    if shard_size is None:
        shard_size = inspect.signature(run_prepare).parameters["shard_size"].default
    plan = build_preparer(source, **options).plan()
    return run_prepare(
        plan, out, workers=workers, shard_size=shard_size, progress=progress, part=which
    )
