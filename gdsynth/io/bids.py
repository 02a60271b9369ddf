"""Cohort discovery (BIDS folders or an explicit table) and derivative naming, in one place.

A cohort is a list of :class:`Exam`: one subject/session with paths to its pre-contrast sequences
(T1w, T2w, FLAIR), the real post-gadolinium T1w when present (training/evaluation target) and an
optional brain mask. Missing sequences are recorded per exam, never a crash.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gdsynth import __version__
from gdsynth.errors import BidsError, InputFileMissingError, MissingSequenceError
from gdsynth.io.atomic import write_json

SEQUENCES = ("T1w", "T2w", "FLAIR", "T1w_gd")
PRE_SEQUENCES = ("T1w", "T2w", "FLAIR")
_ENTITY_ORDER = ("ce", "rec", "run", "space", "label", "desc")
_NII = re.compile(r"\.nii(\.gz)?$")
_LABEL_OK = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Exam:
    """One exam (subject, optional session) and the files that make it up."""

    subject: str
    session: str | None = None
    t1w: Path | None = None
    t2w: Path | None = None
    flair: Path | None = None
    t1w_gd: Path | None = None
    mask: Path | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def prefix(self) -> str:
        """BIDS file-name prefix: ``sub-01`` or ``sub-01_ses-02``."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    @property
    def id(self) -> str:
        """Same as :attr:`prefix`; used as the exam's key in tables and summaries."""
        return self.prefix

    def path(self, sequence: str) -> Path | None:
        """Path of ``sequence`` (one of T1w, T2w, FLAIR, T1w_gd), or None."""
        return {"T1w": self.t1w, "T2w": self.t2w, "FLAIR": self.flair, "T1w_gd": self.t1w_gd}[
            sequence
        ]

    def missing(self, required: Iterable[str] = PRE_SEQUENCES) -> list[str]:
        """Required sequences this exam lacks."""
        return [s for s in required if self.path(s) is None]

    def require(self, required: Iterable[str] = PRE_SEQUENCES) -> None:
        """Raise :class:`MissingSequenceError` naming the exam and the missing sequences."""
        missing = self.missing(required)
        if missing:
            where = self.t1w or self.t2w or self.flair or self.prefix
            raise MissingSequenceError(
                where, f"exam {self.prefix} lacks required sequence(s): {', '.join(missing)}"
            )

    def inputs(self) -> dict[str, Path]:
        """All present files by role (T1w, T2w, FLAIR, T1w_gd, mask)."""
        roles = {"T1w": self.t1w, "T2w": self.t2w, "FLAIR": self.flair, "T1w_gd": self.t1w_gd,
                 "mask": self.mask}
        return {k: v for k, v in roles.items() if v is not None}


def _classify(name: str) -> str | None:
    """Sequence role of a raw anat file name, or None for files gdsynth does not use."""
    stem = _NII.sub("", name)
    parts = stem.split("_")
    suffix = parts[-1]
    ents = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
    if suffix == "T1w":
        ce = ents.get("ce", "").lower()
        if ce:
            return "T1w_gd" if ce in ("gadolinium", "gd", "gadolinium1", "gado") else None
        return "T1w"
    if suffix in ("T2w", "FLAIR"):
        return None if "ce" in ents else suffix
    if suffix == "mask" and ents.get("desc", "").lower() == "brain":
        return "mask"
    return None


def _pick(paths: list[Path], role: str, where: Path) -> Path:
    if len(paths) == 1:
        return paths[0]
    # Several runs/acquisitions: take the one without acq/run, else the last run, reproducibly.
    plain = [p for p in paths if "_run-" not in p.name and "_acq-" not in p.name]
    chosen = sorted(plain or paths)[-1]
    import warnings

    warnings.warn(f"{where}: {len(paths)} {role} files; using {chosen.name}", stacklevel=3)
    return chosen


def _exam_from_anat(anat: Path, subject: str, session: str | None) -> Exam | None:
    found: dict[str, list[Path]] = {}
    for f in sorted(anat.iterdir()):
        if not f.is_file() or not _NII.search(f.name) or f.name.startswith("."):
            continue
        role = _classify(f.name)
        if role:
            found.setdefault(role, []).append(f)
    if not found:
        return None
    pick = {r: _pick(ps, r, anat) for r, ps in found.items()}
    return Exam(
        subject=subject,
        session=session,
        t1w=pick.get("T1w"),
        t2w=pick.get("T2w"),
        flair=pick.get("FLAIR"),
        t1w_gd=pick.get("T1w_gd"),
        mask=pick.get("mask"),
        extra={"bids_folder": str(anat)},
    )


def discover(root: str | Path, participant_labels: Sequence[str] | None = None) -> list[Exam]:
    """Find exams in a BIDS folder (or read a TSV/CSV table given as ``root``).

    ``participant_labels`` keeps only those subjects (with or without the ``sub-`` prefix).
    Exams are sorted by subject then session; exams with missing sequences are kept (see
    :meth:`Exam.missing`). A ``sub-``/``ses-`` folder whose label is not alphanumeric raises
    :class:`BidsError` (labels become output file names).
    """
    root = Path(root)
    if not root.exists():
        raise InputFileMissingError(root, "dataset folder or table not found")
    if root.is_file():
        exams = read_table(root)
    else:
        exams = []
        subjects = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("sub-"))
        if not subjects:
            raise BidsError(root, "no sub-* folders: not a BIDS dataset (or give a table)")
        for sub in subjects:
            label = sub.name[4:]
            sessions = sorted(p for p in sub.iterdir() if p.is_dir() and p.name.startswith("ses-"))
            for folder in (sub, *sessions):  # labels become output file names: no "../", spaces
                if not _LABEL_OK.match(folder.name[4:]):
                    raise BidsError(folder, f"label {folder.name[4:]!r} must be alphanumeric "
                                            "(BIDS); rename the folder")
            for ses in sessions:
                anat = ses / "anat"
                if anat.is_dir():
                    exam = _exam_from_anat(anat, label, ses.name[4:])
                    if exam:
                        exams.append(exam)
            if (sub / "anat").is_dir():
                exam = _exam_from_anat(sub / "anat", label, None)
                if exam and sessions:  # not valid BIDS, but never dropped without a word
                    import warnings

                    warnings.warn(f"{sub / 'anat'}: images directly under {sub.name} beside its "
                                  f"session folders (not valid BIDS); processed as exam "
                                  f"{exam.prefix} besides its sessions", stacklevel=2)
                if exam:
                    exams.append(exam)
    if participant_labels:
        wanted = {p.removeprefix("sub-") for p in participant_labels}
        unknown = wanted - {e.subject for e in exams}
        if unknown:
            raise BidsError(root, f"participant(s) not found: {', '.join(sorted(unknown))}")
        exams = [e for e in exams if e.subject in wanted]
    return sorted(exams, key=lambda e: (e.subject, e.session or ""))


_TABLE_COLUMNS = {"subject", "session", "t1w", "t2w", "flair", "t1w_gd", "mask"}


def read_table(path: str | Path) -> list[Exam]:
    """Read a cohort table (TSV or CSV, UTF-8 with or without a byte-order mark) with columns
    subject, [session], t1w, t2w, flair, [t1w_gd], [mask]. Relative paths are relative to the
    table's folder; empty or ``n/a`` cells mean missing."""
    path = Path(path)
    delim = "," if path.suffix.lower() == ".csv" else "\t"
    try:  # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter=delim)
            cols = {c.strip().lower() for c in (reader.fieldnames or [])}
            if "subject" not in cols or "t1w" not in cols:
                raise BidsError(path, f"table needs columns subject and t1w (has: {sorted(cols)})")
            rows = [{k.strip().lower(): (v or "").strip() for k, v in r.items() if k}
                    for r in reader]
    except UnicodeDecodeError as exc:
        raise BidsError(path, f"table is not UTF-8 text (byte {exc.start}); save it as UTF-8") \
            from None
    except csv.Error as exc:
        raise BidsError(path, f"table cannot be parsed ({exc})") from None
    exams = []
    seen = set()
    for n, row in enumerate(rows, start=2):
        sub = row.get("subject", "").removeprefix("sub-")
        if not sub or not _LABEL_OK.match(sub):
            raise BidsError(path, f"line {n}: subject label {sub!r} must be alphanumeric")
        ses = row.get("session", "").removeprefix("ses-") or None
        if ses is not None and not _LABEL_OK.match(ses):
            raise BidsError(path, f"line {n}: session label {ses!r} must be alphanumeric")
        if (sub, ses) in seen:
            raise BidsError(path, f"line {n}: duplicate exam sub-{sub} ses-{ses}")
        seen.add((sub, ses))

        cells = [_table_path(path, row.get(k, "")) for k in ("t1w", "t2w", "flair", "t1w_gd", "mask")]
        exams.append(Exam(sub, ses, *cells))
    return exams


def _table_path(table: Path, value: str) -> Path | None:
    """A table cell as a path (relative to the table's folder); empty or ``n/a`` is None."""
    if not value or value.lower() == "n/a":
        return None
    q = Path(value)
    return q if q.is_absolute() else table.parent / q


def entities_string(**entities: str | None) -> str:
    """``_key-value`` pairs in BIDS order (unknown keys after, alphabetically)."""
    keys = [k for k in _ENTITY_ORDER if entities.get(k)]
    keys += sorted(k for k in entities if k not in _ENTITY_ORDER and entities.get(k))
    for k in keys:
        if not _LABEL_OK.match(str(entities[k])):
            raise ValueError(f"BIDS entity {k}={entities[k]!r} must be alphanumeric")
    return "".join(f"_{k}-{entities[k]}" for k in keys)


def derivative_path(
    root: str | Path, exam: Exam, suffix: str, ext: str = ".nii.gz", **entities: str | None
) -> Path:
    """``root/sub-X[/ses-Y]/anat/<prefix><_entities>_<suffix><ext>``: the one place names are made."""
    folder = Path(root) / f"sub-{exam.subject}"
    if exam.session:
        folder = folder / f"ses-{exam.session}"
    return folder / "anat" / f"{exam.prefix}{entities_string(**entities)}_{suffix}{ext}"


def write_dataset_description(
    root: str | Path, name: str, *, description: str | None = None, sources: Sequence[str] = ()
) -> Path:
    """Write (or refresh) a derivative ``dataset_description.json`` naming gdsynth and its version."""
    root = Path(root)
    data = {
        "Name": name,
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "gdsynth",
                "Version": __version__,
                "Description": description or name,
                "CodeURL": "https://pypi.org/project/gdsynth/",
            }
        ],
    }
    if sources:
        data["SourceDatasets"] = [{"URL": s} for s in sources]
    return write_json(root / "dataset_description.json", data)


def read_dataset_description(root: str | Path) -> dict:
    """Read ``dataset_description.json`` of a dataset, or ``{}`` when absent."""
    p = Path(root) / "dataset_description.json"
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BidsError(p, f"invalid JSON: {exc}") from None
