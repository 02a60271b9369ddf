"""Monte-Carlo dropout with seeded, batch-independent masks.

MC dropout keeps dropout active at test time and runs the generator ``N`` times; the mean is the
prediction and the standard deviation over samples (population std, ``ddof=0``) the uncertainty.

Masks are not drawn from torch's global RNG. Each dropout module ``m`` and sample ``s`` gets one
mask, drawn by a ``torch.Generator`` seeded from ``(seed, m, s)`` over the module's input shape
without its batch axis, and shared by every item of the batch (:class:`SeededMasks`). Sample
``s`` is therefore one fixed "thinned network" applied to every slice (or window) of the volume,
and the masks do not depend on the batch size, the order of slices or how many samples share one
forward: results are byte-identical for a given seed and batch settings, and equal up to float
rounding of the convolution kernels across batch sizes. Samples are stacked along the batch axis
(sample-major), as many per forward as ``max_items`` allows.

The mean and std are computed relative to the first sample (shifted data), so when all samples
are equal (dropout off, ``p=0``, no dropout module) the std is exactly zero.

With a :class:`gdsynth.models.unet.UNetGenerator`, :class:`SharedEncoder` runs the part before
the dropout modules (:meth:`~gdsynth.models.unet.UNetGenerator.encode`: stem, encoder,
bottleneck, about half the forward time on CPU, memory-bound full-resolution layers) once per
batch of slices instead of once per sample, and passes the masks to
:meth:`~gdsynth.models.unet.UNetGenerator.decode` as values. Any other generator gets its masks
through forward hooks on its dropout modules, for the duration of each forward.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from gdsynth.inference.predictor import ModelRun, Predictor
from gdsynth.models.unet import UNetGenerator, times_mask
from gdsynth.runtime import Precision

if TYPE_CHECKING:
    from gdsynth.inference.compiled import CompiledUNet

log = logging.getLogger(__name__)

#: The encoder output of a U-Net: (skip tensors, bottleneck output).
Features = tuple[list[Tensor], Tensor]


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """Dropout modules of ``model`` (``nn.Dropout``, ``Dropout1d/2d/3d``) in registration order."""
    return [m for m in model.modules() if isinstance(m, _DropoutNd)]


def _mask_seed(seed: int, module_index: int, sample: int) -> int:
    state = np.random.SeedSequence([int(seed) % (2**32), module_index, sample]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


class SeededMasks:
    """The dropout multipliers ``keep / (1 - p)`` of ``model``'s dropout modules for ``seed``:
    one per module (by its index in :func:`dropout_modules`), sample and input shape (without
    the batch axis), drawn once and memoised."""

    def __init__(self, model: nn.Module, seed: int) -> None:
        self.modules = dropout_modules(model)
        self.seed = seed
        self._index = {id(m): i for i, m in enumerate(self.modules)}
        self._cache: dict[tuple, Tensor] = {}

    def mask(self, module: nn.Module, sample: int, shape: tuple[int, ...],
             device: torch.device) -> Tensor:
        """The multiplier of ``module`` for ``sample`` over an input of ``shape`` (no batch axis)."""
        index = self._index[id(module)]
        key = (index, sample, shape, str(device))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        p = float(module.p)
        # channel dropout (Dropout1d/2d/3d) zeroes whole feature maps: one draw per channel
        draw_shape = shape if type(module) is nn.Dropout else (shape[0],) + (1,) * (len(shape) - 1)
        if p <= 0.0:
            m = torch.ones(draw_shape)
        elif p >= 1.0:
            m = torch.zeros(draw_shape)
        else:
            gen = torch.Generator().manual_seed(_mask_seed(self.seed, index, sample))
            keep = torch.rand(draw_shape, generator=gen) >= p
            m = keep.float() / (1.0 - p)
        m = m.to(device)
        if len(self._cache) < 4096:
            self._cache[key] = m
        return m

    def stacked(self, module: nn.Module, samples: range, shape: tuple[int, ...],
                device: torch.device) -> Tensor:
        """``(len(samples), *shape)``: the masks of ``module`` for ``samples``."""
        return torch.stack([self.mask(module, s, shape, device) for s in samples])

    @contextmanager
    def hooked(self, samples: range) -> Iterator[None]:
        """Within the block, each dropout module's output is its input times the masks of
        ``samples`` (the batch holds ``len(samples)`` copies of the items, sample-major)."""
        def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
            x = args[0]
            return times_mask(x, self.stacked(module, samples, tuple(x.shape[1:]), x.device))

        handles = [m.register_forward_hook(hook) for m in self.modules]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


class SharedEncoder:
    """A :class:`gdsynth.models.unet.UNetGenerator` run for MC dropout: :meth:`encode` once per
    batch of slices, then :meth:`decode` for each group of samples with their masks as values.
    Same outputs as running ``model`` on the repeated batch with the masks hooked in, up to float
    rounding (instance norm is per item). Build it with :meth:`wrap`, which returns None when
    the model is not a U-Net with dropout (only) in its decoder.

    ``run`` (:class:`gdsynth.inference.predictor.ModelRun`): device, precision and memory format,
    as :func:`gdsynth.inference.predictor.make_predictor` runs the whole model. ``compiled``
    (:class:`gdsynth.inference.compiled.CompiledUNet`): encode and decode through
    ``torch.compile``.
    """

    def __init__(self, model: UNetGenerator, run: ModelRun,
                 compiled: CompiledUNet | None = None) -> None:
        self.model = model
        self.run = run
        self.compiled = compiled

    @classmethod
    def wrap(cls, model: nn.Module, *, precision: str | Precision = Precision.auto,
             channels_last: bool | None = None, compile: bool = False) -> SharedEncoder | None:
        """The shared encoder of ``model``, or None when the shortcut does not apply to it.

        ``compile``: encode and decode through ``torch.compile``
        (:func:`gdsynth.inference.compiled.compiled_unet`)."""
        if type(model) is not UNetGenerator:
            return None
        in_decoder = model.decoder_dropouts()
        if not in_decoder or len(in_decoder) != len(dropout_modules(model)):
            return None
        compiled = None
        if compile:
            from gdsynth.inference.compiled import compiled_unet

            compiled = compiled_unet(model)
        return cls(model, ModelRun(model, precision=precision, channels_last=channels_last),
                   compiled)

    def encode(self, batch: Tensor) -> Features:
        """The encoder output of ``batch`` (B, C_in, *spatial), on the model's device."""
        encode = self.compiled.encode if self.compiled is not None else self.model.encode
        with torch.inference_mode():
            x = self.run.input(batch)
            with self.run.autocast():
                return encode(x)

    def decode(self, features: Features, masks: SeededMasks, samples: range) -> Tensor:
        """The outputs of MC ``samples`` for the batch ``features`` were encoded from:
        ``(len(samples) * B, out_channels, *spatial)``, sample-major, CPU float32."""
        decode = self.compiled.decode if self.compiled is not None else self.model.decode
        skips, y = features
        with torch.inference_mode():
            multipliers = [masks.stacked(mod, samples, tuple(skips[level].shape[1:]),
                                         skips[level].device)
                           for level, mod in self.model.decoder_dropouts()]
            with self.run.autocast():
                out = decode(skips, y, multipliers)
            return self.run.output(out)


class MCDropoutPredictor:
    """``predictor(batch) -> cat([mean, std], dim=1)`` over ``n_samples`` seeded dropout samples.

    ``model`` is the generator (kept in eval mode; its dropout modules get seeded masks) and
    ``forward`` how it runs: a :class:`SharedEncoder` of it (the encoder once per batch, masks
    passed to the decoder), or the plain predictor around it
    (:func:`gdsynth.inference.predictor.make_predictor`; masks applied by forward hooks).
    Output: (B, 2*C, ...) where channels ``:C`` are the mean and ``C:`` the std of the C output
    channels. ``max_items`` bounds the items per forward (batch × samples); default: all samples
    of a batch in one forward. ``per_forward``: samples per forward whatever the batch size (a
    compiled model: the smaller last batch would otherwise stack more samples, a new batch
    layout to compile).
    """

    def __init__(self, model: nn.Module, forward: Predictor | SharedEncoder, n_samples: int, *,
                 seed: int = 0, max_items: int | None = None,
                 per_forward: int | None = None) -> None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1 (got {n_samples})")
        self.forward = forward
        self.shared = forward if isinstance(forward, SharedEncoder) else None
        self.n_samples = int(n_samples)
        self.max_items = max_items
        self.per_forward = per_forward
        self.masks = SeededMasks(model, seed)
        if n_samples > 1 and not any(float(m.p) > 0 for m in self.masks.modules):
            log.warning("model has no active dropout: MC samples are identical, uncertainty is 0")

    def _samples(self, batch: Tensor) -> Callable[[range], Tensor]:
        """``run(samples) -> (len(samples) * B, C, ...)``: the outputs of MC ``samples`` for
        ``batch``, sample-major (the encoder of a :class:`SharedEncoder` runs here, once)."""
        if self.shared is not None:
            return partial(self.shared.decode, self.shared.encode(batch), self.masks)
        predict = self.forward

        def run(samples: range) -> Tensor:
            with self.masks.hooked(samples):
                return predict(batch.repeat(len(samples), *([1] * (batch.dim() - 1))))

        return run

    def __call__(self, batch: Tensor) -> Tensor:
        n, b = self.n_samples, batch.shape[0]
        if self.per_forward:
            per = min(n, self.per_forward)
        else:
            per = n if not self.max_items else max(1, min(n, self.max_items // max(b, 1)))
        run = self._samples(batch)
        first = dsum = d2sum = None
        for s0 in range(0, n, per):
            samples = range(s0, min(n, s0 + per))
            y = run(samples)
            y = y.reshape(len(samples), b, *y.shape[1:]).double()
            if first is None:
                first = y[0].clone()
                dsum = torch.zeros_like(first)
                d2sum = torch.zeros_like(first)
            d = y - first
            dsum += d.sum(0)
            d2sum += (d * d).sum(0)
        mean_d = dsum / n
        mean = first + mean_d
        std = (d2sum / n - mean_d * mean_d).clamp_min(0).sqrt()
        return torch.cat([mean, std], dim=1).float()


def split_mean_std(output: Tensor | np.ndarray) -> tuple:
    """Split an MC output (2*C, ...) into (mean (C, ...), std (C, ...))."""
    c = output.shape[0] // 2
    return output[:c], output[c:]
