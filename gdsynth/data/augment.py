"""MRI augmentations that keep the input → target mapping consistent.

Design (what may touch the target):

* spatial transforms (small affine, left-right flip) move inputs, target, mask and labels together;
* the bias field and gamma of the pre-contrast T1w and the post-Gd T1w are drawn ONCE and applied
  identically to both (same coil, same session, same contrast curve), so the enhancement
  post − pre is only rescaled like the images and never invented or erased; T2w and FLAIR share
  another draw (they are conditioning only). Gamma keeps NAWM = 1 fixed (1**γ = 1);
* noise, motion and ghosting are applied to the INPUTS only: they are not predictable from the
  inputs, so putting them on the target would only teach the generator to blur.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def build_augmentation(config: AugmentConfig, inputs: Sequence[str]) -> tio.Transform | None:
    """The training augmentation pipeline (None when disabled)."""
    if not config.enabled:
        return None
    pre_post = ["T1w", TARGET]
    others = [s for s in inputs if s != "T1w"]
    ts: list[tio.Transform] = []
    if config.lesion_insertion_p > 0:  # first: on the un-augmented, normalized images
        from gdsynth.data.insertion import RandomLesionInsertion

        ts.append(RandomLesionInsertion(max_lesions=config.lesion_insertion_max,
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
    ts += [
        tio.RandomNoise(std=(0, config.noise_std), include=list(inputs), p=config.noise_p),
        tio.RandomMotion(degrees=2, translation=2, num_transforms=1, include=list(inputs),
                         p=config.motion_p),
        tio.RandomGhosting(num_ghosts=(2, 4), intensity=(0.1, 0.3), include=list(inputs),
                           p=config.ghosting_p),
    ]
    return tio.Compose(ts)
