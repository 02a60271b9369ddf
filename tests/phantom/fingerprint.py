"""A content fingerprint of one simulated subject (images, truth, tables, sidecars, motion).

Used to guard that the original sites (siteA/B/C) stay byte-identical per seed while new site kinds
are added: the expected digests were computed with the code before any site kind existed.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from gdsynth.phantom import PhantomConfig, simulate_subject


def subject_digest(index: int, seed: int, config: PhantomConfig) -> str:
    """SHA-256 over every array (bytes, dtype, shape), geometry, lesion row, sidecar and motion."""
    h = hashlib.sha256()
    subject = simulate_subject(index, seed, config)
    h.update(f"{subject.site}|{subject.orientation}".encode())
    for ev in subject.exams:
        for seq in sorted(ev.images):
            array, geometry = ev.images[seq]
            h.update(f"{seq}|{array.dtype}|{array.shape}|{geometry}".encode())
            h.update(np.ascontiguousarray(array).tobytes())
        for key in sorted(ev.truth):
            arr = np.ascontiguousarray(ev.truth[key])
            h.update(f"{key}|{arr.dtype}|{arr.shape}".encode())
            h.update(arr.tobytes())
        blob = {"lesions": ev.lesions, "motion": ev.motion, "sidecars": ev.sidecars}
        h.update(json.dumps(blob, sort_keys=True, default=str).encode())
    return h.hexdigest()
