"""MRI augmentations that keep the input → target mapping consistent.

Design (what may touch the target):

* spatial transforms (small affine, left-right flip) move inputs, target, mask and labels together;
* the bias field and gamma of the pre-contrast T1w and the post-Gd T1w are drawn ONCE and applied
  identically to both (same coil, same session, same contrast curve), so the enhancement
  post − pre is only rescaled like the images and never invented or erased; T2w and FLAIR get their
  own draws (they are conditioning only). Gamma keeps NAWM = 1 fixed (1**γ = 1);
* noise, motion and ghosting are applied to the INPUTS only: they are not predictable from the
  inputs, so putting them on the target would only teach the generator to blur.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torchio as tio

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


class SharedBiasField(tio.RandomBiasField):
    """RandomBiasField with ONE draw for all images it includes (torchio draws one per image)."""

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        coefficients = self.get_params(self.order, self.coefficients_range)
        return tio.BiasField(
            coefficients={n: coefficients for n in images}, order={n: self.order for n in images},
            **self._get_base_args(),
        )(subject)


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
    ts: list[tio.Transform] = [
        tio.RandomFlip(axes=("LR",), flip_probability=config.flip_p),
        tio.RandomAffine(scales=config.scales, degrees=config.degrees, translation=0,
                         p=config.affine_p, default_pad_value="minimum"),
        SharedBiasField(coefficients=config.bias_coefficients, include=pre_post, p=config.bias_p),
        SharedGamma(log_gamma=config.log_gamma, include=pre_post, p=config.gamma_p),
    ]
    if others:
        ts += [
            tio.RandomBiasField(coefficients=config.bias_coefficients, include=others,
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
