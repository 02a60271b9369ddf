"""MRI augmentations that keep the input → target mapping consistent.

Design (what may touch the target):

* spatial transforms (small affine, left-right flip) move inputs, target, mask and labels together;
* the bias field and gamma of the pre-contrast T1w and the post-Gd T1w are drawn ONCE and applied
  identically to both (same coil, same session, same contrast curve), so the enhancement
  post − pre is only rescaled like the images and never invented or erased; T2w and FLAIR share
  another draw (they are conditioning only). Gamma keeps NAWM = 1 fixed (1**γ = 1);
* noise, motion and ghosting are applied to the INPUTS only: they are not predictable from the
  inputs, so putting them on the target would only teach the generator to blur;
* per-sequence domain randomization (:class:`RandomizeInputs`, ``randomize_p`` > 0; SynthSeg /
  SynthSR practice): each input sequence gets its OWN random monotonic contrast curve, gamma, bias
  field, noise, thick-slice blur and resolution loss, so the model cannot rely on one site's
  contrast. The target keeps its enhancement exactly: it is rebuilt as the randomized pre-contrast
  T1w plus the enhancement (post − pre) measured before the randomization. NAWM stays at 1 (the
  curves, gammas and 0 are fixed points), as normalization would make it at any site.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchio as tio
from torchio.transforms.augmentation import RandomTransform
from torchio.transforms.intensity_transform import IntensityTransform

from gdsynth.data.subjects import TARGET


@dataclass
class AugmentConfig:
    """Probabilities and ranges of each augmentation (``enabled: false`` turns all off)."""

    enabled: bool = True
    affine_p: float = 0.5
    degrees: float = 5.0
    scales: float = 0.05
    flip_p: float = 0.5
    bias_p: float = 0.3
    bias_coefficients: float = 0.3
    gamma_p: float = 0.3
    log_gamma: float = 0.15
    noise_p: float = 0.3
    noise_std: float = 0.03
    motion_p: float = 0.05
    ghosting_p: float = 0.05
    lesion_insertion_p: float = 0.0  # paste phantom lesions into subjects without truth
    lesion_insertion_max: int = 2  # lesions per insertion (1..max)
    lesion_insertion_active: float = 0.5  # share of inserted lesions that enhance
    lesion_insertion_phantom: bool = False  # also into subjects with phantom truth (experiments)
    lesion_insertion_kind: str = "phantom"  # gdsynth.data.insertion.INSERTIONS
    # per-sequence domain randomization of the inputs (0 = off; see RandomizeInputs)
    randomize_p: float = 0.0  # share of subjects whose inputs are randomized
    randomize_contrast: float = 0.3  # SD of the log slopes of the random monotonic contrast curve
    randomize_log_gamma: float = 0.3  # gamma = exp(U(-this, this))
    randomize_bias: float = 0.3  # bias-field polynomial coefficients ~ U(-this, this)
    randomize_noise: float = 0.05  # Gaussian noise SD ~ U(0, this) (NAWM units)
    randomize_slice_mm: float = 6.0  # thick-slice blur (half the time): FWHM ~ U(spacing, this)
    randomize_resolution: float = 2.0  # resolution loss (a third of the time): factor ~ U(1, this)


def smooth_bias_field(shape: Sequence[int], coefficients: torch.Tensor, order: int,
                      coarse: int = 8) -> torch.Tensor:
    """``exp(polynomial)`` multiplicative field of ``shape`` (X, Y, Z), float32.

    The polynomial (all monomials x^i y^j z^k, i + j + k <= ``order``, coordinates in [-1, 1]) is
    evaluated on a ``coarse``³ grid and trilinearly upsampled: the same smooth field as torchio's
    BiasField at a fraction of the cost on whole 1 mm volumes.
    """
    axes = [torch.linspace(-1, 1, coarse) for _ in range(3)]
    x, y, z = torch.meshgrid(*axes, indexing="ij")
    log_field = torch.zeros(coarse, coarse, coarse)
    n = 0
    for i in range(order + 1):
        for j in range(order + 1 - i):
            for k in range(order + 1 - i - j):
                log_field += coefficients[n] * x**i * y**j * z**k
                n += 1
    field = F.interpolate(log_field[None, None], size=tuple(int(s) for s in shape),
                          mode="trilinear", align_corners=True)[0]
    return torch.exp(field)


def n_monomials(order: int) -> int:
    return sum(1 for i in range(order + 1) for j in range(order + 1 - i)
               for _ in range(order + 1 - i - j))


class SharedBiasField(RandomTransform, IntensityTransform):
    """Random smooth multiplicative bias field, ONE draw for all the images it includes.

    Coefficients ~ U(-``coefficients``, ``coefficients``) (torchio's RandomBiasField draws one
    field per image and evaluates it at full resolution, ~10 s per 1 mm volume).
    """

    def __init__(self, coefficients: float = 0.3, order: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.coefficients = float(coefficients)
        self.order = int(order)
        self.args_names = ["coefficients", "order"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        c = (torch.rand(n_monomials(self.order)) * 2 - 1) * self.coefficients
        field = smooth_bias_field(next(iter(images.values())).spatial_shape, c, self.order)
        for image in images.values():
            image.set_data(image.data.float() * field)
        return subject


class SharedGamma(tio.RandomGamma):
    """RandomGamma with ONE γ for all images it includes."""

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        gamma = self.get_params(self.log_gamma_range)
        return tio.Gamma(gamma={n: gamma for n in images}, **self._get_base_args())(subject)


#: Intensity knots (NAWM units) of the random contrast curves; the curve is linear beyond the last.
CURVE_KNOTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)


def random_contrast_curve(x: torch.Tensor, log_slopes: torch.Tensor) -> torch.Tensor:
    """Monotonic piecewise-linear map through (0, 0) and (1, 1) with segment slopes
    ``exp(log_slopes)`` (one per segment between :data:`CURVE_KNOTS`, the last one extended)."""
    knots = torch.tensor(CURVE_KNOTS, dtype=torch.float32)
    slopes = torch.exp(log_slopes.float())
    ys = torch.cat([torch.zeros(1), torch.cumsum(slopes * torch.diff(knots), 0)])
    scale = ys[CURVE_KNOTS.index(1.0)]  # NAWM stays at 1
    ys, slopes = ys / scale, slopes / scale
    xc = x.clamp(min=0.0)
    idx = torch.bucketize(xc, knots[1:-1])  # segment index 0..len-2
    return ys[idx] + slopes[idx] * (xc - knots[idx])


def _blur_axis(data: torch.Tensor, sigma_vox: float, axis: int) -> torch.Tensor:
    """1D Gaussian blur (sigma in voxels) of a (C, X, Y, Z) tensor along spatial ``axis``."""
    radius = max(1, int(3 * sigma_vox))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma_vox) ** 2)
    k = k / k.sum()
    moved = data.float().movedim(axis + 1, -1)
    shape = moved.shape
    flat = F.pad(moved.reshape(-1, 1, shape[-1]), (radius, radius), mode="replicate")
    return F.conv1d(flat, k.view(1, 1, -1)).reshape(shape).movedim(-1, axis + 1)


class RandomizeInputs(RandomTransform):
    """Per-sequence domain randomization of the inputs; the target keeps its enhancement.

    For each input (own draws): a random monotonic contrast curve (log slopes ~ N(0,
    ``contrast``)), gamma ``exp(U(±log_gamma))``, a smooth bias field, Gaussian noise of SD
    ``U(0, noise)``, half the time a thick-slice blur along the third axis (FWHM ``U(spacing,
    slice_mm)`` mm), a third of the time a resolution loss (down- then up-sampling by
    ``U(1, resolution)`` on every axis). Then ``target = T1w_randomized + (target − T1w)_before``.
    """

    def __init__(self, inputs: Sequence[str], *, contrast: float = 0.3, log_gamma: float = 0.3,
                 bias: float = 0.3, noise: float = 0.05, slice_mm: float = 6.0,
                 resolution: float = 2.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inputs = list(inputs)
        self.contrast, self.log_gamma, self.bias = float(contrast), float(log_gamma), float(bias)
        self.noise, self.slice_mm, self.resolution = float(noise), float(slice_mm), float(resolution)
        self.args_names = ["inputs", "contrast", "log_gamma", "bias", "noise", "slice_mm",
                           "resolution"]

    def _randomize(self, image: tio.ScalarImage) -> torch.Tensor:
        x = image.data.float()
        u = lambda lo, hi: float(torch.empty(1).uniform_(lo, hi))  # noqa: E731
        x = random_contrast_curve(x, torch.randn(len(CURVE_KNOTS) - 1) * self.contrast)
        x = x.clamp(min=0.0) ** float(np.exp(u(-self.log_gamma, self.log_gamma)))
        c = (torch.rand(n_monomials(3)) * 2 - 1) * self.bias
        x = x * smooth_bias_field(x.shape[1:], c, 3)
        spacing = [float(v) for v in image.spacing]
        if torch.rand(1) < 0.5 and self.slice_mm > spacing[2]:
            fwhm = np.sqrt(max(u(spacing[2], self.slice_mm) ** 2 - spacing[2] ** 2, 0.0))
            if fwhm > 0:
                x = _blur_axis(x, fwhm / 2.355 / spacing[2], 2)
        if torch.rand(1) < 1 / 3 and self.resolution > 1:
            f = u(1.0, self.resolution)
            size = x.shape[1:]
            small = [max(2, int(round(n / f))) for n in size]
            x = F.interpolate(x[None], size=small, mode="trilinear", align_corners=True)
            x = F.interpolate(x, size=size, mode="trilinear", align_corners=True)[0]
        x = x + torch.randn_like(x) * u(0.0, self.noise)
        return x

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        enhancement = None
        if TARGET in subject and "T1w" in subject:
            enhancement = subject[TARGET].data.float() - subject["T1w"].data.float()
        for name in self.inputs:
            if name in subject:
                subject[name].set_data(self._randomize(subject[name]))
        if enhancement is not None:
            subject[TARGET].set_data(subject["T1w"].data.float() + enhancement)
        return subject


def build_augmentation(config: AugmentConfig, inputs: Sequence[str]) -> tio.Transform | None:
    """The training augmentation pipeline (None when disabled)."""
    if not config.enabled:
        return None
    pre_post = ["T1w", TARGET]
    others = [s for s in inputs if s != "T1w"]
    ts: list[tio.Transform] = []
    if config.lesion_insertion_p > 0:  # first: on the un-augmented, normalized images
        from gdsynth.data.insertion import get_insertion

        insertion = get_insertion(config.lesion_insertion_kind)
        ts.append(insertion(max_lesions=config.lesion_insertion_max,
                            active_probability=config.lesion_insertion_active,
                            phantom_subjects=config.lesion_insertion_phantom,
                            p=config.lesion_insertion_p))
    ts += [
        tio.RandomFlip(axes=("LR",), flip_probability=config.flip_p),
        tio.RandomAffine(scales=config.scales, degrees=config.degrees, translation=0,
                         p=config.affine_p, default_pad_value="minimum"),
        SharedBiasField(coefficients=config.bias_coefficients, include=pre_post, p=config.bias_p),
        SharedGamma(log_gamma=config.log_gamma, include=pre_post, p=config.gamma_p),
    ]
    if others:
        ts += [
            SharedBiasField(coefficients=config.bias_coefficients, include=others,
                            p=config.bias_p),
            tio.RandomGamma(log_gamma=config.log_gamma, include=others, p=config.gamma_p),
        ]
    if config.randomize_p > 0:  # before the input-only artefacts: the enhancement is measured clean
        ts.append(RandomizeInputs(
            inputs, contrast=config.randomize_contrast, log_gamma=config.randomize_log_gamma,
            bias=config.randomize_bias, noise=config.randomize_noise,
            slice_mm=config.randomize_slice_mm, resolution=config.randomize_resolution,
            p=config.randomize_p))
    ts += [
        tio.RandomNoise(std=(0, config.noise_std), include=list(inputs), p=config.noise_p),
        tio.RandomMotion(degrees=2, translation=2, num_transforms=1, include=list(inputs),
                         p=config.motion_p),
        tio.RandomGhosting(num_ghosts=(2, 4), intensity=(0.1, 0.3), include=list(inputs),
                           p=config.ghosting_p),
    ]
    return tio.Compose(ts)
