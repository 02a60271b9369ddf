"""The predictor: a plain callable ``predictor(batch: Tensor) -> Tensor`` around a generator.

Everything downstream (whole-slice prediction, 3D windows, MC dropout, benchmarks) only calls a
predictor, MONAI style, so the same code serves any network. :func:`make_predictor` adds what
inference needs around ``model(batch)``: ``torch.inference_mode``, moving the batch to the
model's device and the result back to CPU float32, the numeric precision (bf16 autocast where
the hardware has bf16 units, :class:`gdsynth.runtime.Precision`) and the channels-last memory
format that oneDNN's bf16 convolutions want.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gdsynth.runtime import Precision, resolve_precision

Predictor = Callable[[Tensor], Tensor]


def module_device(model: nn.Module) -> torch.device:
    """Device of the first parameter (or buffer) of ``model``; CPU for a parameter-free module."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def size_multiple(model: nn.Module) -> int:
    """Spatial sizes the generator accepts must be multiples of this (``2**depth``); 1 if unsaid."""
    return int(getattr(model, "size_multiple", 1) or 1)


class ModelRun:
    """How inference runs a model's functions: batches moved to the model's device (4D batches
    channels-last when chosen; the model is converted once, here), bf16 autocast when the
    precision resolves to bf16, results back to CPU float32. Callers wrap the calls in
    ``torch.inference_mode()``. Shared by :func:`make_predictor` (the whole forward) and
    :class:`gdsynth.inference.mc.SharedEncoder` (encoder and decoder apart), so both run a
    network the same way.

    ``precision``: :func:`gdsynth.runtime.resolve_precision` for the model's device.
    ``channels_last``: None = on for 2D/2.5D networks on CPU (see :func:`make_predictor`).
    """

    def __init__(self, model: nn.Module, *, precision: str | Precision = Precision.auto,
                 channels_last: bool | None = None) -> None:
        self.device = module_device(model)
        use_bf16 = resolve_precision(precision, self.device) is Precision.bf16
        self.precision = Precision.bf16 if use_bf16 else Precision.fp32
        if channels_last is None:
            channels_last = self.device.type == "cpu" and all(p.dim() != 5 for p in model.parameters())
        self.channels_last = channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last)

    def input(self, batch: Tensor) -> Tensor:
        """``batch`` on the model's device, in the memory format of the run."""
        x = batch.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self) -> torch.autocast:
        """The autocast context of the run (bf16, or disabled)."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision is Precision.bf16)

    @staticmethod
    def output(y: Tensor) -> Tensor:
        """A result as CPU float32, contiguous."""
        return y.float().to("cpu").contiguous()


def make_predictor(
    model: nn.Module,
    *,
    precision: str | Precision = Precision.auto,
    channels_last: bool | None = None,
    compile: bool = False,
) -> Predictor:
    """Wrap ``model`` as ``predictor(batch) -> output`` (CPU float32, same batch size).

    ``precision`` (:func:`gdsynth.runtime.resolve_precision` for the model's device): ``bf16``
    runs the forward in bf16 autocast (weights stay float32; the output is returned as float32).
    ``channels_last`` converts 4D batches (and the model, once) to the channels-last memory
    format; default: on for 2D/2.5D networks on CPU (oneDNN's convolutions work channels-last,
    in the default layout every convolution reorders its input and output; with the U-Net's
    layout-keeping instance norm the fp32 forward is about 1.35x faster, docs/benchmarks.md).
    ``compile`` runs the forward through ``torch.compile``
    (:func:`gdsynth.inference.compiled.compiled_model`: one compilation per model and process,
    eager fallback when it fails). The run itself: :class:`ModelRun`.
    """
    run = ModelRun(model, precision=precision, channels_last=channels_last)
    forward = model
    if compile:
        from gdsynth.inference.compiled import compiled_model

        forward = compiled_model(model)

    def predictor(batch: Tensor) -> Tensor:
        with torch.inference_mode():
            x = run.input(batch)
            with run.autocast():
                y = forward(x)
            return run.output(y)

    predictor.precision = run.precision  # type: ignore[attr-defined]
    return predictor
