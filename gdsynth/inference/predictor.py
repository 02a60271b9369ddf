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
    eager fallback when it fails).
    """
    device = module_device(model)
    use_bf16 = resolve_precision(precision, device) is Precision.bf16
    if channels_last is None:
        channels_last = device.type == "cpu" and all(p.dim() != 5 for p in model.parameters())
    if channels_last:
        model.to(memory_format=torch.channels_last)
    run = model
    if compile:
        from gdsynth.inference.compiled import compiled_model

        run = compiled_model(model)

    def predictor(batch: Tensor) -> Tensor:
        with torch.inference_mode():
            x = batch.to(device, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                y = run(x)
            return y.float().to("cpu").contiguous()

    predictor.precision = Precision.bf16 if use_bf16 else Precision.fp32  # type: ignore[attr-defined]
    return predictor
