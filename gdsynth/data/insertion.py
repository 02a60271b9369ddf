"""Generated training data: paste phantom lesions into real subjects (a torchio random transform).

:class:`RandomLesionInsertion` draws lesions with the phantom's lesion model
(:func:`gdsynth.phantom.lesions.draw_active` / :func:`~gdsynth.phantom.lesions.draw_chronic`:
shape, border, relaxation changes, oedema halo, gadolinium pattern), rasterises them with
:func:`gdsynth.phantom.raster.rasterise` on the subject's grid, and changes every image
consistently through the phantom's signal equations (:func:`gdsynth.phantom.signal.signal`): each
voxel is multiplied by ``S(T1 + ΔT1, T2 + ΔT2, PD + ΔPD, Gd) / S(T1, T2, PD)`` of normal white
matter for that sequence and a site protocol. T1/T2 prolongation therefore darkens the T1w and
brightens T2w and FLAIR (with the halo), and gadolinium (``Gd``) acts on the post-Gd T1w only.
Intensities are normalized (NAWM = 1), so the white-matter ratio is the intensity change.

Lesions are centred in normal-appearing white matter (every input within ``nawm_tolerance`` of 1,
away from the brain border). Label maps are updated: ``lesion`` (enhancing, active lesions),
``sampling`` (2 on enhancing voxels) and ``lesions_all`` (every lesion) when present. Subjects with
phantom truth are left alone unless ``phantom_subjects`` (they already have lesions). Apply it
after :class:`gdsynth.data.subjects.AddLesionLabels`, before the other augmentations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torchio as tio
from scipy import ndimage as ndi
from torchio.transforms.augmentation import RandomTransform

from gdsynth.data.subjects import ALL_LESIONS, BRAIN, LESION, SAMPLING, TARGET, TRUTH_ATTR
from gdsynth.io import Geometry
from gdsynth.phantom.config import SITES, TISSUES, PhantomConfig
from gdsynth.phantom.lesions import Lesion, draw_active, draw_chronic
from gdsynth.phantom.raster import LesionMaps, rasterise
from gdsynth.phantom.signal import Protocol, draw_protocol, signal

SEQUENCES = ("T1w", "T2w", "FLAIR", TARGET)


def local_geometry(shape: Sequence[int], spacing: Sequence[float]) -> Geometry:
    """An axis-aligned grid with the subject's shape/spacing (origin 0, identity direction):
    lesions are drawn in its world (mm) frame."""
    return Geometry(tuple(int(s) for s in shape), tuple(float(s) for s in spacing),
                    (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def nawm_candidates(images: dict[str, np.ndarray], brain: np.ndarray, spacing: Sequence[float],
                    tolerance: float = 0.15, border_mm: float = 6.0) -> np.ndarray:
    """(N, 3) voxel indices of normal-appearing WM: every image within ``tolerance`` of 1, at least
    ``border_mm`` inside the brain."""
    inside = ndi.distance_transform_edt(brain > 0, sampling=spacing) > border_mm
    ok = inside.copy()
    for arr in images.values():
        ok &= np.abs(arr - 1.0) < tolerance
    return np.argwhere(ok)


def intensity_factor(sequence: str, maps: LesionMaps, protocol: Protocol, relaxivity: float,
                     region: np.ndarray) -> np.ndarray:
    """Multiplicative change (float32, same shape as ``region``'s True voxels, flattened) of
    ``sequence`` where lesions touch normal white matter."""
    wm = TISSUES["WM"]
    take = lambda a: a[region].astype(np.float64)  # noqa: E731
    gd = take(maps.gd) if sequence == TARGET else 0.0
    lesion = signal(sequence, wm.pd + take(maps.dpd), wm.t1_ms + take(maps.dt1),
                    wm.t2_ms + take(maps.dt2), protocol, gd, relaxivity)
    normal = signal(sequence, wm.pd, wm.t1_ms, wm.t2_ms, protocol, 0.0, relaxivity)
    return (lesion / normal).astype(np.float32)


def insert_lesions(images: dict[str, np.ndarray], lesions: list[Lesion], geometry: Geometry,
                   brain: np.ndarray, protocol: Protocol, relaxivity: float
                   ) -> tuple[dict[str, np.ndarray], LesionMaps]:
    """Pure core: new (X, Y, Z) images with ``lesions`` pasted in, and the rasterised maps."""
    maps = rasterise(lesions, geometry, parenchyma=brain > 0)
    region = ((maps.dt1 != 0) | (maps.gd != 0)) & (brain > 0)
    out = {}
    for name, arr in images.items():
        new = np.array(arr, dtype=np.float32, copy=True)
        if region.any():
            new[region] *= intensity_factor(name, maps, protocol, relaxivity, region)
        out[name] = new
    return out, maps


class RandomLesionInsertion(RandomTransform):
    """Insert 1..``max_lesions`` phantom lesions (active with ``active_probability``).

    ``site`` names the protocol (:data:`gdsynth.phantom.config.SITES`) whose signal equations set
    the contrast; randomness comes from torch's generator (seed it like other torchio transforms).
    A variant (registered with :func:`register_insertion`, chosen by
    ``data.augment.lesion_insertion_kind``) overrides :meth:`draw_lesions` (which lesions) and/or
    :meth:`finish` (anything done to the subject once they are in).
    """

    def __init__(self, *, max_lesions: int = 2, active_probability: float = 0.5,
                 site: str = "siteA", nawm_tolerance: float = 0.15,
                 phantom_subjects: bool = False, config: PhantomConfig | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if site not in SITES:
            from gdsynth.errors import ConfigError

            raise ConfigError(None, f"site {site!r} unknown; choose one of {', '.join(SITES)}")
        self.max_lesions = int(max_lesions)
        self.active_probability = float(active_probability)
        self.site = site
        self.nawm_tolerance = float(nawm_tolerance)
        self.phantom_subjects = bool(phantom_subjects)
        self.config = config or PhantomConfig()
        self.args_names = ["max_lesions", "active_probability", "site", "nawm_tolerance",
                           "phantom_subjects"]

    def draw_lesions(self, rng: np.random.Generator, centres: np.ndarray, geometry: Geometry
                     ) -> list[Lesion]:
        """The lesions of one insertion, centred on ``centres`` (voxel indices of normal-appearing
        white matter) in ``geometry``'s world; active ones carry labels 1..n."""
        lesions: list[Lesion] = []
        for _ in range(int(rng.integers(1, self.max_lesions + 1))):
            centre = geometry.index_to_world(centres[rng.integers(len(centres))].astype(float))
            if any(np.linalg.norm(centre - q.centre) < 2 * q.radii.max() + 4 for q in lesions):
                continue
            if rng.random() < self.active_probability:
                les = draw_active(rng, self.config, centre, 0)
                lesions.append(replace(les, label=len(lesions) + 1))
            else:
                lesions.append(draw_chronic(rng, self.config, centre))
        return lesions

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        if subject.get(TRUTH_ATTR) and not self.phantom_subjects:
            return subject
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
        names = [n for n in SEQUENCES if n in subject]
        images = {n: subject[n].data[0].numpy() for n in names}
        brain = subject[BRAIN].data[0].numpy() > 0
        spacing = subject[BRAIN].spacing
        inputs = {n: a for n, a in images.items() if n != TARGET}
        centres = nawm_candidates(inputs, brain, spacing, self.nawm_tolerance)
        if len(centres) == 0:
            return subject
        geometry = local_geometry(brain.shape, spacing)
        protocol = draw_protocol(rng, SITES[self.site], self.config)
        lesions = self.draw_lesions(rng, centres, geometry)
        new, maps = insert_lesions(images, lesions, geometry, brain, protocol,
                                   self.config.relaxivity)
        for n in names:
            subject[n].set_data(torch.from_numpy(new[n][None]))
        self._update_labels(subject, maps)
        return self.finish(subject, lesions, maps)

    def finish(self, subject: tio.Subject, lesions: list[Lesion], maps: LesionMaps
               ) -> tio.Subject:
        """Called once ``lesions`` are in ``subject`` (images and labels updated; ``maps`` on the
        subject's grid, :func:`local_geometry`); the base class returns ``subject`` as is."""
        return subject

    @staticmethod
    def _update_labels(subject: tio.Subject, maps: LesionMaps) -> None:
        enhancing = torch.from_numpy(maps.enhancing > 0)[None]
        every = torch.from_numpy(maps.all_mask > 0)[None]
        if LESION in subject:
            subject[LESION].set_data((subject[LESION].data.bool() | enhancing).to(torch.uint8))
        if SAMPLING in subject:
            data = subject[SAMPLING].data.clone()
            data[enhancing & (data > 0)] = 2
            subject[SAMPLING].set_data(data)
        if ALL_LESIONS in subject:
            subject[ALL_LESIONS].set_data(
                (subject[ALL_LESIONS].data.bool() | every | enhancing).to(torch.uint8))


#: Lesion insertion transforms by name (``data.augment.lesion_insertion_kind``): ``phantom`` is
#: :class:`RandomLesionInsertion`; experiments add their own with :func:`register_insertion`.
INSERTIONS: dict[str, type[RandomLesionInsertion]] = {"phantom": RandomLesionInsertion}


def register_insertion(name: str, cls: type[RandomLesionInsertion], *,
                       replace: bool = False) -> None:
    """Make ``cls`` (a :class:`RandomLesionInsertion`) selectable as
    ``data.augment.lesion_insertion_kind: NAME``; an existing name needs ``replace=True``."""
    from gdsynth.errors import ConfigError

    if not (isinstance(cls, type) and issubclass(cls, RandomLesionInsertion)):
        raise ConfigError(None, f"lesion insertion {name!r} must be a RandomLesionInsertion class")
    if name in INSERTIONS and not replace:
        raise ConfigError(None, f"lesion insertion {name!r} is already registered")
    INSERTIONS[name] = cls


def get_insertion(name: str) -> type[RandomLesionInsertion]:
    """The insertion class registered as ``name`` (:class:`ConfigError` naming the known ones)."""
    from gdsynth.errors import ConfigError

    if name not in INSERTIONS:
        raise ConfigError(None, f"data.augment.lesion_insertion_kind {name!r} unknown; choose "
                                f"from {', '.join(sorted(INSERTIONS))}")
    return INSERTIONS[name]
