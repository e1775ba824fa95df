"""The published checkpoints avloc can import: one :class:`Checkpoint` per file the authors host.

``avloc import-checkpoint --list`` prints :data:`CHECKPOINTS`; ``avloc import-checkpoint NAME``
downloads a direct-hosted one (:mod:`avloc.jobs.fetch_checkpoint`) or, for a host that needs a
browser (Google Drive, Baidu Pan), says in one line what to download and the command to run on
the file. ``docs/model-zoo.md``'s table of checkpoints is :func:`markdown_table`, written by
``python scripts/zoo_table.py`` (``tests/test_zoo.py`` checks that they agree).

A name is ``<model>-<training set>`` (variants in between, ``sslalign-selfsup-vggss144k``), with
the training sets spelt ``flickr10k``, ``flickr144k`` (Flickr-SoundNet), ``vggss10k``,
``vggss144k``, ``vggssfull`` (VGG-Sound's 10k, 144k and full training lists; the ``vggss``
spelling is the issue's ``ezvsl-vggss144k``: the training set, not the VGG-SS test set) and
``heard110``. LVS publishes one model per test set without naming its training list, so its
names are its test sets (``lvs-flickr``, ``lvs-vggss``).

``reported`` holds the numbers the authors' README reports, as ``docs/model-zoo.md`` copies them
(their protocols differ from avloc's: ``docs/protocol.md``); ``vssl_uth`` is vssl_eval's
``th_maxq3`` for the model's family (:data:`avloc.evaluation.vssl_eval.PUBLISHED_UTH`), None
where vssl_eval has none (RCGrad, SSL-SaN). ``sha256`` is None for every entry: no author
publishes a checksum, and none was computed here (the files could not be fetched), so a download
is not verified; :func:`avloc.utils.download.download` checks one when an entry has it.

Not listed: marginNCE (no public weights) and ACL (not implementable faithfully);
``docs/model-zoo.md`` says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from avloc.errors import AvlocError
from avloc.evaluation.vssl_eval import PUBLISHED_UTH

#: Hosts, and whether a script can download from them (False: a browser is needed).
HOSTS = {
    "github-release": ("GitHub release asset", True),
    "gdrive-folder": ("Google Drive folder", False),
    "gdrive-file": ("Google Drive file", False),
    "github-readme": ("Google Drive files linked from a GitHub README", False),
    "github-repo": ("file in a GitHub repository (URL not confirmed)", False),
}


@dataclass(frozen=True)
class Checkpoint:
    """One published checkpoint file and what is known about it."""

    name: str
    model: str  # the paper's name
    arch: str  # avloc import-checkpoint --arch
    training_set: str
    host: str  # a key of HOSTS
    url: str  # the authors' page or file
    file: str  # the file to download there (a folder's sub-path: ``vggsound_144k/best.pth``)
    reported: dict[str, float] = field(default_factory=dict)
    note: str = ""
    sha256: str | None = None
    which: str = ""  # which of the host's files, where the file name does not say

    @property
    def local_name(self) -> str:
        """The downloaded file's name."""
        return self.file.rsplit("/", 1)[-1]

    @property
    def direct(self) -> bool:
        """Whether a script can download ``url`` (no browser)."""
        return HOSTS[self.host][1]

    @property
    def vssl_uth(self) -> float | None:
        """vssl_eval's per-model threshold (``th_maxq3``), None where it has none."""
        return None if self.arch == "sslsan" else PUBLISHED_UTH.get(self.arch)

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "host": HOSTS[self.host][0],
            "direct": self.direct,
            "vssl_uth": self.vssl_uth,
        }


class ManualDownload(AvlocError):
    """The checkpoint's host needs a browser: the message says what to download and run."""


EZVSL = "https://drive.google.com/drive/folders/1I9nyn8VGU4HFEBDpEUpqFz1ywWcqzC6C"
FNAC = "https://drive.google.com/drive/folders/15NoQSmC6zIetq771pZ_Q6Z7dea957Hhz"
SLAVC = "https://drive.google.com/file/d/1wHufeLWZBv97IaE0cv0GrFk4pLX5NMUj/view"
LVS_FLICKR = "https://drive.google.com/file/d/1Rif19nk8RpxBrkGGoI92g-fssa2qsl-m/view"
LVS_VGGSS = "https://drive.google.com/file/d/1ieyJ7rrrR5aF8SwHNGYNS9dX9t9_apsc/view"
SSLTIE = "https://drive.google.com/drive/folders/1KZxXbPilvJNCPaUeAeZAsUKgZoj9R9qJ"
SSLTIE_NOTE = "or Baidu Pan https://pan.baidu.com/s/1tripjJWIK2Ed_zErCAU4pw, code bqip"
SSLALIGN = "https://github.com/kaistmm/SSLalignment"
RCGRAD = (
    "https://github.com/hohsiangwu/rethinking-visual-sound-localization/releases/download/"
    "v0.1.0-alpha/rc_grad.pt"
)
SSLSAN = "https://github.com/xavijuanola/SSL_SaN"


FL, VS = "Flickr-SoundNet", "VGG-SS"


def _ca(test: str, ciou: float, auc: float) -> dict[str, float]:
    """A README's cIoU / AUC pair on one test set."""
    return {f"{test} cIoU": ciou, f"{test} AUC": auc}


EZVSL_SETS = {
    "flickr_10k": "Flickr 10k",
    "flickr_144k": "Flickr 144k",
    "vggsound_10k": "VGG-Sound 10k",
    "vggsound_144k": "VGG-Sound 144k",
    "vggsound_full": "VGG-Sound full",
    "heard_110": "VGG-Sound, 110 heard classes",
}


def _ezvsl(train: str, folder: str, reported: dict[str, float]) -> Checkpoint:
    return Checkpoint(
        f"ezvsl-{train}", "EZ-VSL", "ezvsl", EZVSL_SETS[folder], "gdrive-folder", EZVSL,
        f"{folder}/best.pth", reported,
    )  # fmt: skip


def _fnac(train: str, title: str, ciou: float, auc: float) -> Checkpoint:
    return Checkpoint(
        f"fnac-{train}", "FNAC", "fnac", title, "gdrive-folder", FNAC,
        "best.pth", _ca(VS, ciou, auc), which=f"of its {title} experiment",
    )  # fmt: skip


def _ssltie(train: str, title: str, file: str) -> Checkpoint:
    return Checkpoint(
        f"ssltie-{train}", "SSL-TIE", "ssltie", title, "gdrive-folder", SSLTIE, file,
        note=SSLTIE_NOTE,
    )  # fmt: skip


def _sslalign(variant: str, file: str, train: str, reported: dict[str, float]) -> Checkpoint:
    title = {"vggss144k": "VGG-Sound 144k", "flickr144k": "Flickr-SoundNet 144k"}[train]
    return Checkpoint(
        f"sslalign-{variant}-{train}", "SSL-Align", "sslalign", title, "github-readme", SSLALIGN,
        file, reported, which=f"the {title} one",
    )  # fmt: skip


_ENTRIES = [
    _ezvsl("flickr10k", "flickr_10k", _ca(FL, 81.93, 62.58)),
    _ezvsl("flickr144k", "flickr_144k", _ca(FL, 83.13, 63.06)),
    _ezvsl("vggss10k", "vggsound_10k", _ca(VS, 37.18, 38.75)),
    _ezvsl("vggss144k", "vggsound_144k", {**_ca(VS, 38.85, 39.54), **_ca(FL, 83.94, 63.60)}),
    _ezvsl("vggssfull", "vggsound_full", _ca(VS, 39.34, 39.78)),
    _ezvsl("heard110", "heard_110", {}),
    _fnac("flickr10k", "Flickr 10k", 35.27, 38.00),
    _fnac("flickr144k", "Flickr 144k", 33.93, 37.29),
    _fnac("vggss10k", "VGG-Sound 10k", 37.29, 38.99),
    _fnac("vggss144k", "VGG-Sound 144k", 39.50, 39.66),
    Checkpoint(
        "slavc-vggss144k", "SLAVC", "slavc", "VGG-Sound 144k", "gdrive-file", SLAVC, "latest.pth",
        {"Ext. Flickr-SoundNet AP": 51.63, "Ext. Flickr-SoundNet max-F1": 59.10,
         "Ext. Flickr-SoundNet Precision": 83.60, "Ext. VGG-SS AP": 32.95,
         "Ext. VGG-SS max-F1": 40.00, "Ext. VGG-SS Precision": 37.79},
    ),
    Checkpoint(
        "lvs-flickr", "LVS", "lvs", "its Flickr model (training list not named)", "gdrive-file",
        LVS_FLICKR, "lvs.pth.tar", which="the Flickr model",
    ),
    Checkpoint(
        "lvs-vggss", "LVS", "lvs", "its VGG-SS model (training list not named)", "gdrive-file",
        LVS_VGGSS, "lvs.pth.tar", which="the VGG-SS model",
    ),
    _ssltie("flickr10k", "Flickr 10k", "flickr10k.pth.tar"),
    _ssltie("flickr144k", "Flickr 144k", "flickr144k.pth.tar"),
    _ssltie("vggss144k", "VGG-Sound 144k", "vggsound144k.pth.tar"),
    _sslalign("sup", "ours_sup.pth.tar", "vggss144k", {"VGG-SS cIoU": 39.94}),
    _sslalign("selfsup", "ours_selfsup.pth.tar", "vggss144k", {"VGG-SS cIoU": 39.16}),
    _sslalign("supprevis", "ours_sup_previs.pth.tar", "vggss144k", {"VGG-SS cIoU": 41.42}),
    _sslalign("sup", "ours_sup.pth.tar", "flickr144k", {"Flickr-SoundNet cIoU": 85.20}),
    _sslalign("selfsup", "ours_selfsup.pth.tar", "flickr144k", {"Flickr-SoundNet cIoU": 84.80}),
    _sslalign(
        "supprevis", "ours_sup_previs.pth.tar", "flickr144k", {"Flickr-SoundNet cIoU": 86.00}
    ),
    Checkpoint(
        "rcgrad-vggsound", "RCGrad", "rcgrad", "VGG-Sound (the paper's; not checked here)",
        "github-release", RCGRAD, "rc_grad.pt",
    ),
    Checkpoint(
        "sslsan-vggss144k", "SSL-SaN", "sslsan",
        "VGG-Sound 144k (as recipes/sslsan.toml; not confirmed)", "github-repo", SSLSAN,
        "evaluate/checkpoints/sslsan.pth.tar",
    ),
]  # fmt: skip

#: Every published checkpoint by name (tests add entries with ``monkeypatch.setitem``).
CHECKPOINTS: dict[str, Checkpoint] = {c.name: c for c in _ENTRIES}


def lookup(name: str) -> Checkpoint:
    """The entry called ``name`` (one-line error naming ``--list`` else)."""
    try:
        return CHECKPOINTS[name.lower()]
    except KeyError:
        raise AvlocError(
            f"{name}: neither a checkpoint file nor a published checkpoint's name "
            "(avloc import-checkpoint --list names them)"
        ) from None


def manual_instructions(entry: Checkpoint, out: str) -> str:
    """One line: the page to open, the file to download there and the command to run on it."""
    also = f" ({entry.note})" if entry.note else ""
    which = f" ({entry.which})" if entry.which else ""
    return (
        f"{entry.name}'s host ({HOSTS[entry.host][0]}) needs a browser: open "
        f"{entry.url}{also}, download {entry.file}{which}, then run `avloc import-checkpoint "
        f"{entry.local_name} --arch {entry.arch} --out {out}`"
    )


def _cell(value) -> str:
    return str(value).replace("|", "\\|")


def markdown_table() -> str:
    """``docs/model-zoo.md``'s table of :data:`CHECKPOINTS` (``scripts/zoo_table.py``)."""
    rows = [
        "| name | `--arch` | trained on | host | download | reported | vssl_eval Uth | sha256 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in CHECKPOINTS.values():
        reported = "; ".join(f"{k} {v:.2f}" for k, v in c.reported.items()) or "none"
        uth = "none" if c.vssl_uth is None else f"{c.vssl_uth:.4f}"
        how = "direct" if c.direct else "browser"
        cells = [f"`{c.name}`", f"`{c.arch}`", c.training_set, f"[{HOSTS[c.host][0]}]({c.url})"]
        cells += [how, reported, uth, c.sha256 or "unknown"]
        rows.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return "\n".join(rows) + "\n"
