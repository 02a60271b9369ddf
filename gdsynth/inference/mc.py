"""Monte-Carlo dropout with seeded, batch-independent masks.

MC dropout keeps dropout active at test time and runs the generator ``N`` times; the mean is the
prediction and the standard deviation over samples (population std, ``ddof=0``) the uncertainty.

Masks are not drawn from torch's global RNG. Each dropout module ``m`` and sample ``s`` gets one
mask, drawn by a ``torch.Generator`` seeded from ``(seed, m, s)`` over the module's input shape
without its batch axis, and shared by every item of the batch. Sample ``s`` is therefore one
fixed "thinned network" applied to every slice (or window) of the volume, and the masks do not
depend on the batch size, the order of slices or how many samples share one forward: results are
byte-identical for a given seed and batch settings, and equal up to float rounding of the
convolution kernels across batch sizes. Samples are stacked along the batch axis (sample-major), as many per forward as
``max_items`` allows.

The mean and std are computed relative to the first sample (shifted data), so when all samples
are equal (dropout off, ``p=0``, no dropout module) the std is exactly zero.

:class:`SharedEncoder` runs the part of a U-Net before its first dropout (stem, encoder,
bottleneck: about half the forward time on CPU, memory-bound full-resolution layers) once per
slice instead of once per sample; the samples differ only from the first dropout on.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from gdsynth.inference.predictor import Predictor

if TYPE_CHECKING:
    from gdsynth.inference.compiled import CompiledUNet

log = logging.getLogger(__name__)


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """Dropout modules of ``model`` (``nn.Dropout``, ``Dropout1d/2d/3d``) in registration order."""
    return [m for m in model.modules() if isinstance(m, _DropoutNd)]


def enable_mc_dropout(model: nn.Module) -> int:
    """Put only the dropout modules of ``model`` in training mode (global-RNG MC dropout).

    Returns how many were switched. :class:`MCDropoutPredictor` does not need this (it applies
    its own seeded masks with the model in eval mode); it is here for callers that want torch's
    own dropout at test time.
    """
    mods = dropout_modules(model)
    for m in mods:
        m.train()
    return len(mods)


def _mask_seed(seed: int, module_index: int, sample: int) -> int:
    state = np.random.SeedSequence([int(seed) % (2**32), module_index, sample]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


class _SeededMasks:
    """Forward hooks that replace each dropout module's output by ``input * mask_s / (1 - p)``."""

    def __init__(self, model: nn.Module, seed: int) -> None:
        self.modules = dropout_modules(model)
        self.seed = seed
        self.samples: tuple[int, int] = (0, 1)
        self._cache: dict[tuple, Tensor] = {}

    def mask(self, index: int, module: nn.Module, sample: int, shape: tuple[int, ...],
             device: torch.device) -> Tensor:
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

    def hook(self, index: int):
        def fn(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
            x = args[0]
            s0, s1 = self.samples
            n = s1 - s0
            per = x.shape[0] // n
            shape = tuple(x.shape[1:])
            if n == 1:  # broadcast: keeps x's memory format (channels-last) and dtype
                return x * self.mask(index, module, s0, shape, x.device).to(x.dtype)
            masks = torch.stack([self.mask(index, module, s, shape, x.device) for s in range(s0, s1)])
            y = x.reshape(n, per, *shape) * masks[:, None].to(x.dtype)
            return y.reshape(x.shape)

        return fn

    @contextmanager
    def active(self):
        handles = [m.register_forward_hook(self.hook(i)) for i, m in enumerate(self.modules)]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()


class SharedEncoder(nn.Module):
    """A :class:`gdsynth.models.unet.UNetGenerator` for MC dropout, whose encoder (everything
    before the dropout modules) runs once per batch of slices, not once per sample.

    The input batch is ``copies`` identical copies (sample-major, as :class:`MCDropoutPredictor`
    stacks them): the encoder runs on one copy and its outputs are repeated; the decoder runs on
    all. When consecutive forwards get the same slices (the samples of one batch split over
    several forwards, as on CPU), the last encoder result is reused. Same outputs as
    ``model(x)`` up to float rounding (instance norm is per item). Build it with :meth:`wrap`,
    which returns None when the model is not a U-Net with dropout only in its decoder.

    ``compiled`` (:class:`gdsynth.inference.compiled.CompiledUNet`): the encoder and decoder run
    through ``torch.compile``; the decoder then applies the current samples' masks (``masks``,
    set by :class:`MCDropoutPredictor`) as inputs instead of through the forward hooks.
    """

    def __init__(self, model: nn.Module, compiled: CompiledUNet | None = None) -> None:
        super().__init__()
        self.model = model
        self.copies = 1
        self.compiled = compiled
        self.masks: _SeededMasks | None = None  # set by MCDropoutPredictor (compiled decoder)
        self._last: tuple[Tensor, list[Tensor], Tensor] | None = None

    def reset(self) -> None:
        """Forget the cached encoder result."""
        self._last = None

    def encode(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """(skip tensors, bottleneck output) of ``x``, reused when ``x`` equals the last input."""
        last = self._last
        if last is not None and last[0].shape == x.shape and last[0].device == x.device \
                and torch.equal(last[0], x):
            return last[1], last[2]
        if self.compiled is not None:
            skips, y = self.compiled.encode(x)
        else:
            m = self.model
            skips = [m.stem(x)]
            for down in m.down:
                skips.append(down(skips[-1]))
            y = m.bottleneck(skips[-1])
        self._last = (x, skips, y)
        return skips, y

    @classmethod
    def wrap(cls, model: nn.Module, *, compile: bool = False) -> SharedEncoder | None:
        """The wrapper, or None when the encoder-sharing shortcut does not apply to ``model``.

        ``compile``: run the encoder and the decoder compiled
        (:func:`gdsynth.inference.compiled.compiled_unet`) when the model's layout allows it."""
        from gdsynth.models.unet import UNetGenerator

        if type(model) is not UNetGenerator:
            return None
        in_decoder = {id(m) for m in dropout_modules(model.up)}
        if not in_decoder or any(id(m) not in in_decoder for m in dropout_modules(model)):
            return None
        compiled = None
        if compile:
            from gdsynth.inference.compiled import compiled_unet

            compiled = compiled_unet(model)
        return cls(model, compiled)

    def forward(self, x: Tensor) -> Tensor:
        m = self.model
        n = self.copies if self.copies >= 1 and x.shape[0] % self.copies == 0 else 1
        skips, y = self.encode(x[: x.shape[0] // n])
        if self.compiled is not None and self.masks is not None:
            return self.compiled.decode(skips, y, self._decoder_masks(skips, n, x.device))
        if n > 1:
            def rep(t: Tensor) -> Tensor:
                return t.repeat(n, *([1] * (t.dim() - 1)))

            skips, y = [rep(t) for t in skips], rep(y)
        for i in reversed(range(len(m.up))):
            y = m.up[i](torch.cat([y, skips[i + 1]], dim=1))
        return m.head(torch.cat([y, skips[0]], dim=1))

    def _decoder_masks(self, skips: list[Tensor], n: int, device: torch.device) -> list[Tensor]:
        """The compiled decoder's dropout multipliers: for each dropout module, (n, *shape) for
        the current samples, drawn as the eager forward hook draws them."""
        assert self.compiled is not None and self.masks is not None
        s0, s1 = self.masks.samples
        if s1 - s0 != n:
            raise RuntimeError(f"{n} copies in the batch but samples {s0}..{s1 - 1} active")
        index = {id(mod): k for k, mod in enumerate(self.masks.modules)}
        return [torch.stack([self.masks.mask(index[id(mod)], mod, s, tuple(skips[level].shape[1:]),
                                             device) for s in range(s0, s1)])
                for mod, level in zip(self.compiled.dropouts, self.compiled.levels, strict=True)]


class MCDropoutPredictor:
    """``predictor(batch) -> cat([mean, std], dim=1)`` over ``n_samples`` seeded dropout samples.

    ``model`` is the generator (kept in eval mode; its dropout modules get seeded masks) and
    ``predict`` the plain predictor around it (:func:`gdsynth.inference.predictor.make_predictor`).
    Output: (B, 2*C, ...) where channels ``:C`` are the mean and ``C:`` the std of the C output
    channels. ``max_items`` bounds the items per forward (batch × samples); default: all samples
    of a batch in one forward. ``shared``: the :class:`SharedEncoder` that ``predict`` runs, if
    any (its ``copies`` is set to the samples of each forward). ``per_forward``: samples per
    forward whatever the batch size (a compiled model: the smaller last batch would otherwise
    stack more samples, a new batch layout to compile).
    """

    def __init__(self, model: nn.Module, predict: Predictor, n_samples: int, *, seed: int = 0,
                 max_items: int | None = None, shared: SharedEncoder | None = None,
                 per_forward: int | None = None) -> None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1 (got {n_samples})")
        self.predict = predict
        self.n_samples = int(n_samples)
        self.max_items = max_items
        self.per_forward = per_forward
        self.shared = shared
        self.masks = _SeededMasks(model, seed)
        if shared is not None:
            shared.masks = self.masks
        if n_samples > 1 and not any(float(m.p) > 0 for m in self.masks.modules):
            log.warning("model has no active dropout: MC samples are identical, uncertainty is 0")

    def __call__(self, batch: Tensor) -> Tensor:
        n, b = self.n_samples, batch.shape[0]
        if self.per_forward:
            per = min(n, self.per_forward)
        else:
            per = n if not self.max_items else max(1, min(n, self.max_items // max(b, 1)))
        first = dsum = d2sum = None
        with self.masks.active():
            for s0 in range(0, n, per):
                s1 = min(n, s0 + per)
                self.masks.samples = (s0, s1)
                if self.shared is not None:
                    self.shared.copies = s1 - s0
                reps = batch.repeat(s1 - s0, *([1] * (batch.dim() - 1)))
                y = self.predict(reps)
                y = y.reshape(s1 - s0, b, *y.shape[1:]).double()
                if first is None:
                    first = y[0].clone()
                    dsum = torch.zeros_like(first)
                    d2sum = torch.zeros_like(first)
                d = y - first
                dsum += d.sum(0)
                d2sum += (d * d).sum(0)
        if self.shared is not None:
            self.shared.reset()
        mean_d = dsum / n
        mean = first + mean_d
        std = (d2sum / n - mean_d * mean_d).clamp_min(0).sqrt()
        return torch.cat([mean, std], dim=1).float()


def split_mean_std(output: Tensor | np.ndarray) -> tuple:
    """Split an MC output (2*C, ...) into (mean (C, ...), std (C, ...))."""
    c = output.shape[0] // 2
    return output[:c], output[c:]
