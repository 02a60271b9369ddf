"""All pixel and file I/O of gdsynth: images with their geometry, BIDS layout, atomic writes."""

from gdsynth.io.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    read_tsv,
    sweep_stale_temps,
    write_json,
    write_tsv,
)
from gdsynth.io.geometry import Geometry
from gdsynth.io.image import (
    DEFAULT_MAX_VOXELS,
    file_sha256,
    read_image,
    read_image_info,
    write_image,
    write_labels,
)

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "Geometry",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "read_image",
    "read_image_info",
    "read_tsv",
    "sweep_stale_temps",
    "write_image",
    "write_json",
    "write_labels",
    "write_tsv",
]
