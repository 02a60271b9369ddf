"""Atomic writes: every output is written under a temporary name in its final folder, then renamed.

A crash, a kill or a full disk therefore never leaves a partial file under a final name, and an
earlier complete file with the same name stays intact until the new one is complete.

A process killed with SIGKILL (or the OOM killer) cannot remove its temporary file, though:
:func:`sweep_stale_temps` removes such leftovers, named exactly as :func:`atomic_path` names them
(``.<final name>.gdsynth-tmp-<8 random characters><extension>``), once they have not been touched
for :data:`STALE_AFTER_S` (one hour). A temporary file that another running gdsynth process is
writing is recent (its writer creates it and writes it at once), so it is never removed. The CLI
sweeps each output folder when a command starts writing there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

TMP_MARK = ".gdsynth-tmp-"
#: A temporary file untouched for this long (seconds) belongs to a dead writer.
STALE_AFTER_S = 3600.0
# mkstemp's random part: 8 characters of [a-z0-9_]
_TMP_NAME = re.compile(r"^\.(?P<final>.+)" + re.escape(TMP_MARK) + r"[a-z0-9_]{8}(?P<ext>.*)$")

log = logging.getLogger(__name__)


def _suffixes(path: Path) -> str:
    """Return the full extension (``.nii.gz``, ``.json``): writers choose their format by it."""
    name = path.name
    for ext in (".nii.gz", ".tar.gz"):
        if name.endswith(ext):
            return ext
    return path.suffix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the extension so format-sniffing writers (SimpleITK) still work. On
    any exception the temporary file is removed and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.name}{TMP_MARK}", suffix=_suffixes(final), dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask like open()
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def is_temp_name(name: str) -> bool:
    """True when ``name`` is exactly how :func:`atomic_path` names a temporary file."""
    m = _TMP_NAME.match(name)
    return bool(m) and m.group("ext") == _suffixes(Path(m.group("final")))


def sweep_stale_temps(root: str | Path, *, older_than_s: float = STALE_AFTER_S,
                      max_depth: int = 8) -> list[Path]:
    """Remove gdsynth's own temporary files left under ``root`` by killed processes.

    Only regular files named as :func:`atomic_path` names them (:func:`is_temp_name`) and not
    modified for ``older_than_s`` seconds are removed; symlinks are
    neither followed nor removed, folders deeper than ``max_depth`` below ``root`` are not
    visited, and a file that vanishes or cannot be removed is skipped. Returns the removed paths.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    deadline = time.time() - older_than_s
    removed: list[Path] = []
    base_depth = len(base.parts)
    for folder, dirs, files in os.walk(base, followlinks=False):
        if len(Path(folder).parts) - base_depth >= max_depth:
            dirs[:] = []
        for name in files:
            if TMP_MARK not in name or not is_temp_name(name):
                continue
            path = Path(folder) / name
            try:
                st = path.lstat()
                if not stat.S_ISREG(st.st_mode) or st.st_mtime > deadline:
                    continue
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    if removed:
        log.info("removed %d stale temporary file(s) of interrupted writes under %s",
                 len(removed), base)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed and fsynced before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (sorted keys, NaN refused) atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=True, allow_nan=False, default=_json_default)
    return atomic_write_text(path, text + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def format_cell(value: Any) -> str:
    """Format one TSV cell: floats with 6 significant digits, None as ``n/a`` (BIDS)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:.6g}"
    text = str(value)
    return text.replace("\t", " ").replace("\n", " ")


def write_tsv(
    path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> Path:
    """Write rows (dicts) as a BIDS-style TSV with a header line, atomically.

    ``columns`` fixes the column order (and lets an empty table still have a header).
    """
    if columns is None:
        columns = list(rows[0].keys()) if rows else []
    lines = ["\t".join(columns)]
    for row in rows:
        lines.append("\t".join(format_cell(row.get(c)) for c in columns))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_tsv(path: str | Path) -> list[dict[str, str]]:
    """Read a TSV written by :func:`write_tsv` (or any BIDS TSV) into a list of string dicts."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return [dict(r) for r in csv.DictReader(fh, delimiter="\t")]
