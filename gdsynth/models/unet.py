"""The pix2pix U-Net generator (2D, 2.5D or 3D) with dropout modules usable for MC dropout.

Layout: input ``(B, C_in, H, W)`` (2D; 2.5D stacks ``2k+1`` adjacent slices of every sequence as
channels, sequence-major) or ``(B, C_in, X, Y, Z)`` (3D). Every spatial size must be divisible by
``2**depth`` (:attr:`UNetGenerator.size_multiple`): each encoder level halves the size with a
strided convolution and the decoder doubles it back before concatenating the skip connection.

Output ``(B, out_channels, ...)`` on the input grid: channel 0 is the residual post − pre (when the
model card says ``residual``; the enhancement is sparse, so the network cannot score by copying the
pre-contrast T1w and the L1 loss concentrates on what matters) or the post-Gd T1w itself, in
normalized intensity units (NAWM = 1); channels 1.. are logits of the optional ``heads``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from gdsynth.errors import ConfigError, parse_choice


class Norm(str, Enum):
    """Normalization layer after each convolution."""

    instance = "instance"
    batch = "batch"
    none = "none"


class Upsample(str, Enum):
    """How the decoder doubles the spatial size."""

    transpose = "transpose"  # transposed convolution (pix2pix)
    interpolate = "interpolate"  # nearest upsampling then 3x3 convolution (no checkerboard)


class _KeepsLayout:
    """Instance norm that keeps a channels-last input channels-last.

    ``aten::instance_norm`` returns a channels-first tensor whatever its input, so in a
    channels-last network (bf16 on CPU, the training step) every norm costs a layout conversion
    before the next convolution. Instance norm with affine parameters is group norm with one
    group per channel (per-item, per-channel statistics, biased variance, same eps), and the CPU
    group-norm kernel has a channels-last path: about 2x faster forward on 16 x 208 x 240 maps
    (docs/benchmarks.md). Statistics are accumulated in float32 in both kernels. Same
    parameters and state-dict keys as ``nn.InstanceNorm2d/3d`` (shipped weights load as before).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        if (self.affine and not self.track_running_stats and x.dim() in (4, 5)  # type: ignore[attr-defined]
                and not x.is_contiguous() and x.is_contiguous(memory_format=fmt)):
            return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)  # type: ignore[attr-defined]
        return super().forward(x)  # type: ignore[misc]


class InstanceNorm2d(_KeepsLayout, nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` keeping channels-last inputs channels-last (:class:`_KeepsLayout`)."""


class InstanceNorm3d(_KeepsLayout, nn.InstanceNorm3d):
    """``nn.InstanceNorm3d`` keeping channels-last inputs channels-last (:class:`_KeepsLayout`)."""


def layers_for(spatial_dims: int) -> tuple[type[nn.Module], type[nn.Module], dict[str, type]]:
    """(Conv, ConvTranspose, norms) classes for 2 or 3 spatial dimensions."""
    if spatial_dims == 2:
        return nn.Conv2d, nn.ConvTranspose2d, {"instance": InstanceNorm2d, "batch": nn.BatchNorm2d}
    if spatial_dims == 3:
        return nn.Conv3d, nn.ConvTranspose3d, {"instance": InstanceNorm3d, "batch": nn.BatchNorm3d}
    raise ConfigError(None, f"spatial_dims must be 2 or 3, got {spatial_dims}")


def norm_layer(norm: Norm, channels: int, spatial_dims: int) -> nn.Module:
    if norm is Norm.none:
        return nn.Identity()
    cls = layers_for(spatial_dims)[2][norm.value]
    return cls(channels, affine=True)


#: Sane bounds of the integer architecture arguments (inclusive). A model card asking for more
#: (a hostile or corrupted ``model_card.json``) is refused before anything is allocated.
BOUNDS: dict[str, tuple[int, int]] = {
    "in_channels": (1, 256), "out_channels": (1, 64), "spatial_dims": (2, 3),
    "features": (1, 1024), "max_features": (1, 4096), "depth": (1, 10), "dropout_blocks": (0, 10),
}
MAX_HEADS = 16
#: Largest generator accepted (parameters): 2 GB of float32 weights.
MAX_PARAMETERS = 500_000_000


def check_unet_kwargs(kwargs: dict[str, Any]) -> int:
    """Validate :class:`UNetGenerator` keyword arguments without building anything; return the
    number of parameters they imply. Unknown names, wrong types, values outside :data:`BOUNDS`
    and networks above :data:`MAX_PARAMETERS` raise :class:`ConfigError`."""
    import inspect

    if not isinstance(kwargs, dict):
        raise ConfigError(None, f"kwargs must be a mapping, got {type(kwargs).__name__}")
    accepted = set(inspect.signature(UNetGenerator.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(None, f"unknown argument(s) {', '.join(map(str, unknown))}")
    if "in_channels" not in kwargs:
        raise ConfigError(None, "missing argument in_channels")
    for name, (low, high) in BOUNDS.items():
        if name not in kwargs or (name == "dropout_blocks" and kwargs[name] is None):
            continue  # the default
        value = kwargs[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(None, f"{name} must be an integer, got {value!r}")
        if not low <= value <= high:
            raise ConfigError(None, f"{name}={value} outside the accepted range [{low}, {high}]")
    dropout = kwargs.get("dropout", 0.5)
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ConfigError(None, f"dropout must be a number in [0, 1), got {dropout!r}")
    heads = kwargs.get("heads", ())
    if (not isinstance(heads, list | tuple) or len(heads) > MAX_HEADS
            or not all(isinstance(h, str) for h in heads)):
        raise ConfigError(None, f"heads must be a list of at most {MAX_HEADS} names")
    parse_choice(Norm, kwargs.get("norm", "instance"), "norm")
    parse_choice(Upsample, kwargs.get("upsample", "transpose"), "upsample")
    count = unet_parameter_count(**kwargs)
    if count > MAX_PARAMETERS:
        raise ConfigError(None, f"the network would have {count:,} parameters (limit "
                                f"{MAX_PARAMETERS:,})")
    return count


def unet_parameter_count(*, in_channels: int, out_channels: int = 1, spatial_dims: int = 2,
                         features: int = 32, depth: int = 4, norm: str = "instance",
                         max_features: int = 256, heads: Sequence[str] = (),
                         upsample: str = "transpose", **_: Any) -> int:
    """Trainable parameters of :class:`UNetGenerator` with these arguments (computed, not built)."""
    out = 1 + len(heads) if heads else out_channels
    ch = [min(features * 2**i, max_features) for i in range(depth + 1)]

    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k**spatial_dims + cout

    def nrm(c: int) -> int:
        return 0 if Norm(norm) is Norm.none else 2 * c

    total = conv(in_channels, ch[0], 3) + nrm(ch[0])
    total += sum(conv(ch[i], ch[i + 1], 4) + nrm(ch[i + 1]) for i in range(depth))
    total += conv(ch[depth], ch[depth], 3) + nrm(ch[depth])
    k_up = 4 if Upsample(upsample) is Upsample.transpose else 3
    total += sum(conv(2 * ch[i + 1], ch[i], k_up) + nrm(ch[i]) for i in range(depth))
    return total + conv(2 * ch[0], out, 1)


class UNetGenerator(nn.Module):
    """pix2pix U-Net: strided-conv encoder, transposed-conv (or upsample+conv) decoder, skips.

    Dropout (``nn.Dropout`` modules, rate ``dropout``) sits in the ``dropout_blocks`` deepest
    decoder blocks (default ``max(1, depth // 2)``), as in pix2pix; MC dropout
    (:mod:`gdsynth.inference.mc`) passes its seeded masks to :meth:`decode` in their place.
    ``heads`` adds one logit channel each after the synthesis channel
    (``out_channels = 1 + len(heads)``). The forward is :meth:`encode` then :meth:`decode`.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 1,
        spatial_dims: int = 2,
        features: int = 32,
        depth: int = 4,
        dropout: float = 0.5,
        norm: str = "instance",
        max_features: int = 256,
        heads: Sequence[str] = (),
        upsample: str = "transpose",
        dropout_blocks: int | None = None,
    ) -> None:
        super().__init__()
        heads = list(heads)
        if heads and out_channels not in (1, 1 + len(heads)):
            raise ConfigError(None, f"out_channels={out_channels} disagrees with heads {heads}")
        out_channels = 1 + len(heads) if heads else out_channels
        if in_channels < 1 or out_channels < 1 or features < 1 or depth < 1:
            raise ConfigError(None, "in_channels, out_channels, features and depth must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(None, f"dropout must be in [0, 1), got {dropout}")
        norm_e = parse_choice(Norm, norm, "norm")
        up_e = parse_choice(Upsample, upsample, "upsample")
        conv, tconv, _ = layers_for(spatial_dims)
        n_drop = max(1, depth // 2) if dropout_blocks is None else int(dropout_blocks)
        self.kwargs: dict[str, Any] = {
            "in_channels": in_channels, "out_channels": out_channels, "spatial_dims": spatial_dims,
            "features": features, "depth": depth, "dropout": dropout, "norm": norm_e.value,
            "max_features": max_features, "heads": heads, "upsample": up_e.value,
            "dropout_blocks": n_drop,
        }
        self.spatial_dims = spatial_dims
        self.heads = heads
        self.size_multiple = 2**depth
        ch = [min(features * 2**i, max_features) for i in range(depth + 1)]

        def block(*mods: nn.Module) -> nn.Sequential:
            return nn.Sequential(*mods)

        self.stem = block(conv(in_channels, ch[0], 3, padding=1), norm_layer(norm_e, ch[0], spatial_dims),
                          nn.LeakyReLU(0.2))
        self.down = nn.ModuleList(
            block(conv(ch[i], ch[i + 1], 4, stride=2, padding=1),
                  norm_layer(norm_e, ch[i + 1], spatial_dims), nn.LeakyReLU(0.2))
            for i in range(depth)
        )
        self.bottleneck = block(conv(ch[depth], ch[depth], 3, padding=1),
                                norm_layer(norm_e, ch[depth], spatial_dims), nn.ReLU())
        ups = []
        for i in range(depth):
            if up_e is Upsample.transpose:
                resize: list[nn.Module] = [tconv(2 * ch[i + 1], ch[i], 4, stride=2, padding=1)]
            else:
                resize = [nn.Upsample(scale_factor=2, mode="nearest"),
                          conv(2 * ch[i + 1], ch[i], 3, padding=1)]
            mods = [*resize, norm_layer(norm_e, ch[i], spatial_dims), nn.ReLU()]
            if dropout > 0 and i >= depth - n_drop:
                mods.append(nn.Dropout(dropout))
            ups.append(block(*mods))
        self.up = nn.ModuleList(ups)
        self.head = conv(2 * ch[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *spatial) -> (B, out_channels, *spatial)``; spatial sizes % size_multiple == 0."""
        spatial = x.shape[2:]
        if len(spatial) != self.spatial_dims or any(s % self.size_multiple for s in spatial):
            raise ValueError(
                f"input spatial shape {tuple(spatial)} must have {self.spatial_dims} dims, each "
                f"divisible by {self.size_multiple} (2**depth)"
            )
        return self.decode(*self.encode(x))

    def encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Stem, encoder and bottleneck of ``x`` (B, C_in, *spatial), sizes unchecked (see
        :meth:`forward`): ``(skips, bottleneck output)``, ``skips[0]`` the stem output (full
        size) and ``skips[i]`` the i-th downsampling block's (size / 2**i)."""
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        return skips, self.bottleneck(skips[-1])

    def decode(self, skips: list[torch.Tensor], y: torch.Tensor,
               masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Decoder and head on the output of :meth:`encode`: ``(B, out_channels, *spatial)``.

        ``masks`` None: the dropout modules run as modules (identity in eval mode). Else MC
        dropout with the given multipliers (``keep / (1 - p)``) in place of the dropout modules,
        one ``(n, C, *spatial)`` tensor per module in the order :meth:`decoder_dropouts` lists
        them, for ``n`` samples: ``skips`` and ``y`` (B items) are repeated ``n`` times,
        sample-major, and the output has ``n * B`` items."""
        n = masks[0].shape[0] if masks else 1
        if n > 1:
            skips = [t.repeat(n, *([1] * (t.dim() - 1))) for t in skips]
            y = y.repeat(n, *([1] * (y.dim() - 1)))
        k = 0
        for i in reversed(range(len(self.up))):
            h = torch.cat([y, skips[i + 1]], dim=1)
            for mod in self.up[i]:
                if masks is not None and isinstance(mod, _DropoutNd):
                    h = times_mask(h, masks[k])
                    k += 1
                else:
                    h = mod(h)
            y = h
        return self.head(torch.cat([y, skips[0]], dim=1))

    def decoder_dropouts(self) -> list[tuple[int, nn.Module]]:
        """``(level, module)`` of each dropout module in the order :meth:`decode` meets them
        (deepest block first). The module ends decoder block ``up[level]``, so its input has the
        shape of ``skips[level]``."""
        return [(i, mod) for i in reversed(range(len(self.up))) for mod in self.up[i]
                if isinstance(mod, _DropoutNd)]


def times_mask(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``h`` (n * B, C, *spatial), sample-major, times ``mask`` (n, C, *spatial): sample s's
    multiplier for its B items."""
    n = mask.shape[0]
    if n == 1:  # broadcast: keeps h's memory format (channels-last) and dtype
        return h * mask[0].to(h.dtype)
    return (h.reshape(n, -1, *h.shape[1:]) * mask[:, None].to(h.dtype)).reshape(h.shape)
