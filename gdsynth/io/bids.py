"""Cohort discovery (BIDS folders or an explicit table) and derivative naming, in one place.

A cohort is a list of :class:`Exam`: one subject/session with paths to its sequences (those of the
registry, :mod:`gdsynth.io.sequences`: pre-contrast T1w, T2w, FLAIR, the real post-gadolinium T1w
when present...) and an optional brain mask. Missing sequences are recorded per exam, never a
crash.
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
from gdsynth.io.sequences import SEQUENCES, classify, datatypes, input_names, sequence

_ENTITY_ORDER = ("ce", "rec", "run", "space", "label", "desc")
_NII = re.compile(r"\.nii(\.gz)?$")
_LABEL_OK = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Exam:
    """One exam (subject, optional session) and the files that make it up.

    ``files`` maps registered sequence names (:mod:`gdsynth.io.sequences`) to paths, in registry
    order; an unregistered name is refused, naming the valid ones. ``t1w``, ``t2w``, ``flair`` and
    ``t1w_gd`` are read-only views of it.
    """

    subject: str
    session: str | None = None
    files: dict[str, Path] = field(default_factory=dict, hash=False)
    mask: Path | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        given = {k: Path(v) for k, v in dict(self.files).items() if v is not None}
        for name in given:
            sequence(name)
        order = list(SEQUENCES)
        object.__setattr__(self, "files", dict(sorted(given.items(),
                                                      key=lambda kv: order.index(kv[0]))))

    t1w = property(lambda self: self.files.get("T1w"), doc="Pre-contrast T1w, or None.")
    t2w = property(lambda self: self.files.get("T2w"), doc="T2w, or None.")
    flair = property(lambda self: self.files.get("FLAIR"), doc="FLAIR, or None.")
    t1w_gd = property(lambda self: self.files.get("T1w_gd"), doc="Real post-Gd T1w, or None.")

    @property
    def prefix(self) -> str:
        """BIDS file-name prefix: ``sub-01`` or ``sub-01_ses-02``."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    @property
    def id(self) -> str:
        """Same as :attr:`prefix`; used as the exam's key in tables and summaries."""
        return self.prefix

    def path(self, name: str) -> Path | None:
        """Path of registered sequence ``name``, or None (an unregistered name is refused)."""
        sequence(name)
        return self.files.get(name)

    def missing(self, required: Iterable[str] | None = None) -> list[str]:
        """Required sequences (default: every registered input) this exam lacks."""
        return [s for s in (input_names() if required is None else required)
                if self.path(s) is None]

    def require(self, required: Iterable[str] | None = None) -> None:
        """Raise :class:`MissingSequenceError` naming the exam and the missing sequences."""
        missing = self.missing(required)
        if missing:
            where = next((p for n, p in self.files.items() if n in input_names()), self.prefix)
            raise MissingSequenceError(
                where, f"exam {self.prefix} lacks required sequence(s): {', '.join(missing)}"
            )

    def inputs(self) -> dict[str, Path]:
        """All present files by role (the registered sequences, then ``mask``)."""
        return {**self.files, **({"mask": self.mask} if self.mask is not None else {})}


def _classify(name: str) -> str | None:
    """Sequence name (or ``mask``) of a raw file name, or None for files gdsynth does not use."""
    parts = _NII.sub("", name).split("_")
    suffix = parts[-1]
    ents = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
    if suffix == "mask" and ents.get("desc", "").lower() == "brain":
        return "mask"
    return classify(suffix, ents)


def _pick(paths: list[Path], role: str, where: Path) -> Path:
    if len(paths) == 1:
        return paths[0]
    # Several runs/acquisitions: take the one without acq/run, else the last run, reproducibly.
    plain = [p for p in paths if "_run-" not in p.name and "_acq-" not in p.name]
    chosen = sorted(plain or paths)[-1]
    import warnings

    warnings.warn(f"{where}: {len(paths)} {role} files; using {chosen.name}", stacklevel=3)
    return chosen


def _exam_from_folders(folder: Path, subject: str, session: str | None) -> Exam | None:
    """The exam whose raw files are in ``folder``'s datatype folders (:func:`datatypes`)."""
    found: dict[str, list[Path]] = {}
    where: dict[str, Path] = {}
    present = [d for t in datatypes() if (d := folder / t).is_dir()]
    for datatype in present:
        for f in sorted(datatype.iterdir()):
            if not f.is_file() or not _NII.search(f.name) or f.name.startswith("."):
                continue
            role = _classify(f.name)
            if role and (role == "mask" or sequence(role).datatype == datatype.name):
                found.setdefault(role, []).append(f)
                where[role] = datatype
    if not found:
        return None
    pick = {r: _pick(ps, r, where[r]) for r, ps in found.items()}
    mask = pick.pop("mask", None)
    return Exam(subject=subject, session=session, files=pick, mask=mask,
                extra={"bids_folder": str(present[0])})


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
                exam = _exam_from_folders(ses, label, ses.name[4:])
                if exam:
                    exams.append(exam)
            exam = _exam_from_folders(sub, label, None)
            if exam:
                if sessions:  # not valid BIDS, but never dropped without a word
                    import warnings

                    warnings.warn(f"{exam.extra['bids_folder']}: images directly under {sub.name} "
                                  "beside its "
                                  f"session folders (not valid BIDS); processed as exam "
                                  f"{exam.prefix} besides its sessions", stacklevel=2)
                exams.append(exam)
    if participant_labels:
        wanted = {p.removeprefix("sub-") for p in participant_labels}
        unknown = wanted - {e.subject for e in exams}
        if unknown:
            raise BidsError(root, f"participant(s) not found: {', '.join(sorted(unknown))}")
        exams = [e for e in exams if e.subject in wanted]
    return sorted(exams, key=lambda e: (e.subject, e.session or ""))


def read_table(path: str | Path) -> list[Exam]:
    """Read a cohort table (TSV or CSV, UTF-8 with or without a byte-order mark) with columns
    subject, [session], t1w, t2w, flair, [t1w_gd], [mask] (one column per registered sequence,
    its name in lower case: :attr:`SequenceInfo.column`). Relative paths are relative to the
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

        files = {s.name: _table_path(path, row.get(s.column, "")) for s in SEQUENCES.values()}
        exams.append(Exam(sub, ses, files, _table_path(path, row.get("mask", ""))))
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
    return _exam_folder(root, exam) / "anat" / f"{exam.prefix}{entities_string(**entities)}_{suffix}{ext}"


def raw_path(root: str | Path, exam: Exam, name: str, ext: str = ".nii.gz") -> Path:
    """Where registered sequence ``name`` of ``exam`` lives in raw BIDS dataset ``root``:
    ``root/sub-X[/ses-Y]/<datatype>/<prefix><_entities>_<suffix><ext>`` (the registry's naming)."""
    info = sequence(name)
    return _exam_folder(root, exam) / info.datatype / (
        f"{exam.prefix}{entities_string(**info.entity_dict)}_{info.suffix}{ext}")


def _exam_folder(root: str | Path, exam: Exam) -> Path:
    folder = Path(root) / f"sub-{exam.subject}"
    return folder / f"ses-{exam.session}" if exam.session else folder


class GdsynthDeprecationWarning(FutureWarning):
    """A file or form gdsynth still reads for one release (shown to users, unlike
    :class:`DeprecationWarning`)."""


_WARNED: set[tuple[str, str]] = set()


def legacy_entities(suffix: str, ext: str, entities: dict[str, str | None]
                    ) -> list[tuple[str, str, dict[str, str | None]]]:
    """The names gdsynth 0.1 gave to derivative ``(suffix, ext, entities)`` (read, with a
    :class:`GdsynthDeprecationWarning`, for one release): ``_label-L_desc-X_dseg`` (now
    ``_desc-X_dseg``: BIDS allows no ``label-`` on ``dseg``), ``_desc-X_map`` (now ``_desc-X_T1w``
    for the enhancement, uncertainty and attribution maps: ``map`` is no BIDS suffix) and the
    phantom's ``_motion.json`` (now ``_headmotion.json``: ``motion`` is a BIDS datatype)."""
    desc = str(entities.get("desc") or "")
    if suffix == "dseg" and not entities.get("label"):
        return [("dseg", ext, {**entities, "label": "L"})]
    if suffix == "T1w" and not entities.get("ce") and (
            desc in ("enhancement", "uncertainty") or desc.startswith("attribution")):
        return [("map", ext, entities)]
    if suffix == "headmotion":
        return [("motion", ext, entities)]
    return []


def find_derivative(
    root: str | Path, exam: Exam, suffix: str, ext: str = ".nii.gz", **entities: str | None
) -> Path:
    """The file :func:`derivative_path` names when it exists, else the same file under its name
    of gdsynth 0.1 (:func:`legacy_entities`) when that exists, with a one-time
    :class:`GdsynthDeprecationWarning` per folder and kind; else the new name (for the caller's
    own "missing" handling)."""
    path = derivative_path(root, exam, suffix, ext, **entities)
    if path.exists():
        return path
    for old_suffix, old_ext, old_entities in legacy_entities(suffix, ext, entities):
        old = derivative_path(root, exam, old_suffix, old_ext, **old_entities)
        if old.exists():
            kind = old.name.removeprefix(exam.prefix)
            if (str(root), kind) not in _WARNED:
                _WARNED.add((str(root), kind))
                import warnings

                warnings.warn(
                    f"{root}: reading '{kind}' files by their old name (now "
                    f"'{path.name.removeprefix(exam.prefix)}'); gdsynth reads old names until the "
                    "next release: rerun with --overwrite to rename", GdsynthDeprecationWarning,
                    stacklevel=2)
            return old
    return path


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a data file: ``x_T1w.nii.gz`` -> ``x_T1w.json``."""
    path = Path(path)
    name = re.sub(r"(\.nii\.gz|\.nii|\.tsv)$", "", path.name)
    return path.with_name(name + ".json")


def dataset_root(path: str | Path) -> Path | None:
    """The BIDS dataset holding ``path``: the nearest folder above it (up to ``sub-*/ses-*/anat``)
    with a ``dataset_description.json``, else None."""
    for parent in list(Path(path).absolute().parents)[:4]:
        if (parent / "dataset_description.json").is_file():
            return parent
    return None


def source_uri(root: str | Path, path: str | Path) -> str:
    """BIDS URI of ``path`` as a source of derivative dataset ``root``: ``bids::REL`` inside
    ``root``, else ``bids:raw:REL`` (``raw``, ``raw2``... linked in ``root``'s
    ``dataset_description.json`` ``DatasetLinks``, to the input's dataset or, outside any
    dataset, to the input's folder)."""
    import os

    root, path = Path(root).absolute(), Path(path).absolute()
    if path.is_relative_to(root):
        return f"bids::{path.relative_to(root).as_posix()}"
    source = dataset_root(path) or path.parent
    alias = _link(root, source)
    return f"bids:{alias}:{Path(os.path.relpath(path, source)).as_posix()}"


def _link(root: Path, source: Path) -> str:
    """The ``DatasetLinks`` alias of ``source`` in ``root``'s description, added when absent."""
    import os

    value = Path(os.path.relpath(source, root)).as_posix()
    desc = read_dataset_description(root)
    links = desc.get("DatasetLinks") or {}
    for alias, target in links.items():
        if target == value:
            return alias
    alias = next(a for n in range(1, 1000) if (a := "raw" if n == 1 else f"raw{n}") not in links)
    if desc:
        desc["DatasetLinks"] = {**links, alias: value}
        urls = [s.get("URL") for s in desc.get("SourceDatasets", [])]
        if value not in urls:
            desc["SourceDatasets"] = [*desc.get("SourceDatasets", []), {"URL": value}]
        write_json(root / "dataset_description.json", desc)
    return alias


def write_sidecar(
    image: str | Path, root: str | Path, *, description: str, sources: Sequence[str | Path] = (),
    skull_stripped: bool | None = None, **extra: object,
) -> Path:
    """Write the BIDS JSON sidecar of derivative ``image`` in dataset ``root``: ``Description``,
    ``Sources`` (BIDS URIs, :func:`source_uri`), ``SkullStripped`` when given (required by BIDS
    on preprocessed anatomical images), then ``extra`` keys."""
    data: dict[str, object] = {"Description": description}
    if sources:
        data["Sources"] = [source_uri(root, s) for s in sources]
    if skull_stripped is not None:
        data["SkullStripped"] = bool(skull_stripped)
    data.update(extra)
    return write_json(sidecar_path(image), data)


def write_dataset_description(
    root: str | Path, name: str, *, description: str | None = None,
    sources: Sequence[str | Path] = (), readme: str | None = None, ignore: Sequence[str] = (),
) -> Path:
    """Write (or refresh) a derivative ``dataset_description.json`` naming gdsynth and its version,
    with ``SourceDatasets``/``DatasetLinks`` (``sources``: source dataset folders, linked by
    their path relative to ``root``; links added by :func:`source_uri` are kept), a ``README``
    (``readme``) and a ``.bidsignore`` listing ``ignore`` (gdsynth's tables and records that have
    no place in BIDS)."""
    import os

    root = Path(root)
    old = read_dataset_description(root) if (root / "dataset_description.json").is_file() else {}
    data = {
        "Name": name,
        "BIDSVersion": "1.10.0",
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
    links = dict(old.get("DatasetLinks") or {})
    for src in sources:
        value = Path(os.path.relpath(Path(src).absolute(), root.absolute())).as_posix()
        if value not in links.values():
            links["raw" if "raw" not in links else f"raw{len(links) + 1}"] = value
    if links:
        data["SourceDatasets"] = [{"URL": v} for v in links.values()]
        data["DatasetLinks"] = links
    if readme is not None:
        from gdsynth.io.atomic import atomic_write_text

        atomic_write_text(root / "README.md", readme)
    if ignore:
        from gdsynth.io.atomic import atomic_write_text

        atomic_write_text(root / ".bidsignore", "".join(f"{p}\n" for p in ignore))
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
