"""Atomic writes: every output is written under a temporary name in its final folder, then renamed.

A crash, a kill or a full disk therefore never leaves a partial file under a final name, and an
earlier complete file with the same name stays intact until the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

TMP_MARK = ".gdsynth-tmp-"


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
