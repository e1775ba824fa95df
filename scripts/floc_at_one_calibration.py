"""FLOC and cIoU at Uth of every ablation row at one Uth calibration for all rows, from the
reproduction's saved records (runs/reproduce-synthetic/samples). Usage:
    python3 scripts/floc_at_one_calibration.py
"""

from pathlib import Path

import numpy as np

from avloc.evaluation.scoring import score_records
from avloc.jobs.reproduce import uth_from_maxima
from avloc.jobs.reproduce.plan import Budget, plan_jobs
from avloc.jobs.reproduce.runner import load_maxima
from avloc.maps.records import load_records

work = Path("runs/reproduce-synthetic")
jobs = plan_jobs(Budget.full(), work / "data")
settings = [(("silence", "noise"), "q3"), (("silence", "noise", "other"), "p90")]
out = {}
for job in jobs:
    path = work / "samples" / f"{job.key}.npz"
    records, maxima = load_records(path), load_maxima(path)
    for setting in settings:
        s = score_records(records, uth_from_maxima(maxima, *setting))
        for row in job.rows:
            out.setdefault((setting[1], row.key), []).append(
                (s.metrics["global"]["floc"], s.metrics["positive"]["universal"]["ciou_mean"])
            )
for (stat, key), v in sorted(out.items()):
    if key.startswith("ablation") or key in ("ezvsl", "sslsan"):
        v = np.array(v)
        floc, ciou = v[:, 0], v[:, 1]
        print(
            f"{stat:4s} {key:12s} FLOC {floc.mean():6.2f} ± {floc.std(ddof=1):5.2f}  "
            f"cIoU_Uth {ciou.mean():6.2f}"
        )
