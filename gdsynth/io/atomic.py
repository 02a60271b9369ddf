"""Atomic writes: every output is written under a temporary name in its final folder, then renamed.

A crash, a kill or a full disk therefore never leaves a partial file under a final name, and an
earlier complete file with the same name stays intact until the new one is complete.

Before the rename, the temporary file is flushed to disk and **verified** (:func:`verify_written`):
a writer that reports success after writing less than it should (SimpleITK's NIfTI writer on a
full disk prints ``NWAD: wrote only 0 of N bytes`` and returns normally) is caught there, the
temporary file is removed, and :class:`gdsynth.errors.OutputError` names the final path. An
``OSError`` such as ENOSPC raised while writing becomes the same one-line error.

A process killed with SIGKILL (or the OOM killer) cannot remove its temporary file, though:
:func:`sweep_stale_temps` removes such leftovers, named exactly as :func:`atomic_path` names them
(``.<final name>.gdsynth-tmp-<8 random characters><extension>``), once they have not been touched
for :data:`STALE_AFTER_S` (one hour). A temporary file that another running gdsynth process is
writing is recent (its writer creates it and writes it at once), so it is never removed. The CLI
sweeps each output folder when a command starts writing there.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import logging
import os
import re
import stat
import struct
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gdsynth.errors import OutputError

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


#: OSError numbers that mean "the storage cannot take this write" (said as such in the error).
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


def _storage_problem(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write: {reason} (disk full?); an earlier file of this name was kept"
    return f"cannot write: {reason}; an earlier file of this name was kept"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, verify: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the extension so format-sniffing writers (SimpleITK) still work.
    After the block the file is fsynced and, with ``verify`` (the default), checked complete by
    :func:`verify_written`; only then is it renamed. On any exception, or a file that fails the
    check, the temporary file is removed and ``path`` is left as it was; storage errors (ENOSPC,
    EIO, ...) and incomplete files raise :class:`~gdsynth.errors.OutputError` naming ``path``.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{final.name}{TMP_MARK}", suffix=_suffixes(final), dir=final.parent
        )
    except OSError as exc:
        if exc.errno in _STORAGE_ERRNOS:
            raise OutputError(final, _storage_problem(exc)) from exc
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask like open()
        yield tmp
        _fsync(tmp)
        if verify:
            problem = verify_written(tmp)
            if problem:
                raise OutputError(final, f"the written file is incomplete or corrupt ({problem}); "
                                         "disk full? an earlier file of this name was kept")
        os.replace(tmp, final)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if exc.errno in _STORAGE_ERRNOS and not isinstance(exc, OutputError):
            raise OutputError(final, _storage_problem(exc)) from exc
        raise
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        # writers with their own error types (safetensors' Rust writer, torch's zip writer) say
        # "No space left on device" in their message rather than raising OSError
        if isinstance(exc, Exception) and not isinstance(exc, OutputError) and any(
                m in str(exc) for m in _STORAGE_MESSAGES):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise OutputError(final, f"cannot write: {first} (disk full?); an earlier file of "
                                     "this name was kept") from exc
        raise


_STORAGE_MESSAGES = ("No space left on device", "os error 28", "Disk quota exceeded",
                     "file write failed", "Input/output error")
_NIFTI_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4,
                1024: 8, 1280: 8, 1536: 16, 1792: 16, 2048: 32, 2304: 4}
_PNG_END = b"IEND\xaeB`\x82"


def _nifti_problem(head: bytes, total: int) -> str | None:
    """Check that a NIfTI-1/2 stream of ``total`` bytes (header ``head``) holds all its voxels."""
    if len(head) < 348:
        return f"{total} bytes, shorter than a NIfTI header"
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size in (348, 540):
            break
    else:
        return "no NIfTI header (sizeof_hdr is neither 348 nor 540)"
    if size == 348:
        dims = struct.unpack(order + "8h", head[40:56])
        datatype = struct.unpack(order + "h", head[70:72])[0]
        offset = struct.unpack(order + "f", head[108:112])[0]
    else:
        if len(head) < 540:
            return f"{total} bytes, shorter than a NIfTI-2 header"
        datatype = struct.unpack(order + "h", head[12:14])[0]
        dims = struct.unpack(order + "8q", head[16:80])
        offset = struct.unpack(order + "q", head[168:176])[0]
    ndim = dims[0]
    if not 1 <= ndim <= 7 or datatype not in _NIFTI_BYTES:
        return "a NIfTI header with an invalid dim or datatype"
    voxels = 1
    for d in dims[1:ndim + 1]:
        voxels *= max(int(d), 1)
    need = int(offset) + voxels * _NIFTI_BYTES[datatype]
    if total < need:
        return f"{total} of {need} bytes"
    return None


def _gzip_size(path: Path) -> tuple[bytes, int]:
    """Decompress a whole gzip file (which checks its CRC and length); return head and size."""
    head = b""
    total = 0
    with gzip.open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            if len(head) < 540:
                head += block[: 540 - len(head)]
            total += len(block)
    return head, total


def verify_written(path: str | Path) -> str | None:
    """Return why the file at ``path`` is incomplete or corrupt, or None when it looks whole.

    By extension: NIfTI (``.nii``, ``.nii.gz``: the whole gzip stream decompresses with a valid
    CRC and holds ``vox_offset`` + every voxel the header declares), other ``.gz`` (decompresses),
    JSON (parses), PNG (ends with its IEND chunk), safetensors (header and data as long as the
    header says), zip-based checkpoints (``.ckpt``/``.pt``: every member's CRC); none of these may
    be empty. Other formats are not checked (their writers raise on a full disk: Python's own file
    objects do). Cheap next to computing what is written.
    """
    p = Path(path)
    name = p.name.lower()
    known = (".nii.gz", ".nii", ".gz", ".json", ".png", ".safetensors", ".ckpt", ".pt")
    if not name.endswith(known):
        return None
    try:
        size = p.stat().st_size
        if size == 0:
            return "empty file"
        if name.endswith(".nii.gz"):
            head, total = _gzip_size(p)
            return _nifti_problem(head, total)
        if name.endswith(".nii"):
            with open(p, "rb") as fh:
                return _nifti_problem(fh.read(540), size)
        if name.endswith(".gz"):
            _gzip_size(p)
        elif name.endswith(".json"):
            json.loads(p.read_text(encoding="utf-8"))
        elif name.endswith(".png"):
            with open(p, "rb") as fh:
                fh.seek(max(size - 8, 0))
                if fh.read() != _PNG_END:
                    return "PNG without its end chunk"
        elif name.endswith(".safetensors"):
            with open(p, "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]
                header = json.loads(fh.read(n))
            ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
            if size != 8 + n + max(ends, default=0):
                return f"{size} bytes, safetensors header says {8 + n + max(ends, default=0)}"
        elif name.endswith((".ckpt", ".pt")) and zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                bad = zf.testzip()
            if bad is not None:
                return f"member {bad} has a bad CRC"
    except (EOFError, OSError, ValueError, struct.error, zipfile.BadZipFile, KeyError,
            TypeError, IndexError) as exc:
        if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
            raise
        return f"{type(exc).__name__}: {exc}"
    return None


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
    """Write ``data`` to ``path`` atomically (flushed, fsynced and read back before the rename)."""
    with atomic_path(path, verify=False) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if tmp.read_bytes() != data:
            raise OutputError(path, f"the written file is incomplete ({tmp.stat().st_size} of "
                                    f"{len(data)} bytes); disk full? an earlier file was kept")
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
