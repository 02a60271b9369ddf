"""Layer-wise relevance propagation (LRP-ε) of a lesion's synthetic enhancement.

The quantity explained is the scalar of :class:`gdsynth.explain.attribution.LesionForward`: the
lesion's summed predicted enhancement (residual output post − pre) in its mask. Its relevance is
redistributed, layer by layer, onto every voxel of every input sequence (and context slice): a
positive relevance is evidence *for* enhancement, a negative one evidence *against* it.

Implementation (our own rules, no extra dependency; see docs/explain.md for why not captum's
``LRP`` or zennit): LRP is computed as "modified gradient × input" (Montavon et al., Digital Signal
Processing 2018; Montavon et al. 2019, "Layer-wise relevance propagation: an overview"). While
:func:`lrp_rules` is active, every module of the generator keeps its forward value, but

* **convolutions, transposed convolutions** (and the 1x1 head) use the ε-rule: the gradient leaving
  the layer's pre-activation ``z`` is multiplied by ``z / (z + ε·sign(z))``, with
  ``ε = epsilon · RMS(z)`` per sample and layer. A bias (and ε) absorbs relevance, as in standard
  LRP-ε; with ``epsilon → 0`` and no biases the propagation is exactly conservative;
* **instance normalization** (:class:`NormRule`): by default (``centred``) the standard deviation
  is held fixed at its current value and the mean subtraction is kept as what it is, a linear,
  bias-free map (each voxel minus the channel mean), so only the affine shift β is a bias; with
  ``fixed`` both mean and standard deviation are detached — the usual practice for batch norm
  (a per-channel affine map, i.e. merging the norm into the preceding convolution for this input),
  but then ``−γ·mean/σ`` acts as a large bias and on the shipped model the relevance summed to
  −0.35 to −1.71 × the output (``experiments/lrp_conservation.py``, docs/explain.md), so it is
  not the default. Either way the
  ε-rule is applied to the normalization's output, the pre-activation of the conv+norm layer.
  Batch norm (eval mode, running statistics) is an affine map with its own bias;
* **(leaky) ReLU, dropout (eval mode = identity), nearest upsampling, zero padding, skip
  concatenations, the 2.5D slice unfolding**: plain gradients, which for these piecewise-linear or
  linear, bias-free operations are exactly the LRP-0 redistribution (``a / z`` equals the
  derivative of a (leaky) ReLU), so relevance splits over a concatenation in proportion to each
  branch's contribution.

The relevance of an input voxel is then ``x · ∂̃F/∂x`` (∂̃: the modified gradient). An input the
network ignores (zero weights) gets exactly zero relevance. The relevance sums to ``F`` minus what
the biases and ε absorbed; :attr:`Relevance.conservation` reports ``Σ R / F``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from gdsynth.errors import ConfigError, parse_choice

#: Default ε (relative to the RMS of each layer's pre-activation).
DEFAULT_EPSILON = 0.05


class NormRule(str, Enum):
    """How LRP passes relevance through instance normalization (see the module doc)."""

    centred = "centred"  # σ fixed, mean subtraction kept (linear, conservative)
    fixed = "fixed"  # mean and σ fixed: an affine map whose shift absorbs relevance

_LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
           nn.ConvTranspose3d, nn.Linear)
_INSTANCE = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_BATCH = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_PASS = (nn.ReLU, nn.LeakyReLU, nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.Identity, nn.Upsample,
         nn.Tanh)


def _stabilized_gate(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``z`` in the forward pass; ``grad · z / (z + ε sign z)`` in the backward pass."""
    dims = tuple(range(1, z.dim()))
    rms = z.detach().pow(2).mean(dim=dims, keepdim=True).sqrt() if dims else z.detach().abs()
    eps = epsilon * rms + 1e-12
    zd = z.detach()
    sign = torch.where(zd >= 0, torch.ones_like(zd), -torch.ones_like(zd))
    factor = zd / (zd + eps * sign)
    return zd + (z - zd) * factor


def _instance_norm(module: nn.Module, x: torch.Tensor, centred: bool) -> torch.Tensor:
    """Instance norm with σ detached (and the mean too unless ``centred``)."""
    dims = tuple(range(2, x.dim()))
    mean = x.mean(dim=dims, keepdim=True) if centred else x.detach().mean(dim=dims, keepdim=True)
    var = x.detach().var(dim=dims, keepdim=True, unbiased=False)
    y = (x - mean) / torch.sqrt(var + module.eps)
    if module.affine:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = y * module.weight.view(shape) + module.bias.view(shape)
    return y


def _pre_activations(model: nn.Module) -> set[nn.Module]:
    """The modules whose output is a layer's pre-activation: a normalization (or the Identity
    standing for 'no normalization') right after a convolution in a Sequential, else the
    convolution itself."""
    gated: set[nn.Module] = set()
    for module in model.modules():
        if isinstance(module, _LINEAR):
            gated.add(module)
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq)
        for a, b in zip(children, children[1:], strict=False):
            if isinstance(a, _LINEAR) and isinstance(b, (*_INSTANCE, *_BATCH, nn.Identity)):
                gated.discard(a)
                gated.add(b)
    return gated


def check_supported(model: nn.Module) -> None:
    """Raise :class:`ConfigError` naming any leaf module LRP has no rule for."""
    known = (*_LINEAR, *_INSTANCE, *_BATCH, *_PASS)
    bad = sorted({type(m).__name__ for m in model.modules()
                  if not list(m.children()) and not isinstance(m, known)})
    if bad:
        raise ConfigError(None, f"LRP has no rule for layer type(s) {', '.join(bad)}")


@contextmanager
def lrp_rules(model: nn.Module, epsilon: float = DEFAULT_EPSILON,
              norm_rule: NormRule | str = NormRule.centred) -> Iterator[nn.Module]:
    """Within the block, gradients of ``model`` are LRP-ε modified gradients (see module doc).

    ``model`` must be in eval mode (dropout off: LRP explains the deterministic prediction)."""
    if epsilon < 0:
        raise ConfigError(None, f"LRP epsilon must be >= 0, got {epsilon}")
    check_supported(model)
    centred = parse_choice(NormRule, norm_rule, "LRP norm rule") is NormRule.centred
    handles = []
    gated = _pre_activations(model)
    try:
        for module in model.modules():
            if isinstance(module, _INSTANCE):
                def norm_hook(mod, inputs, output, _gate=module in gated, _centred=centred):
                    y = _instance_norm(mod, inputs[0], _centred)
                    return _stabilized_gate(y, epsilon) if _gate else y
                handles.append(module.register_forward_hook(norm_hook))
            elif module in gated:
                handles.append(module.register_forward_hook(
                    lambda mod, inputs, output: _stabilized_gate(output, epsilon)))
        yield model
    finally:
        for h in handles:
            h.remove()


@dataclass
class Relevance:
    """LRP of one scalar output: ``relevance`` has the input's shape (batch dim dropped);
    ``output`` is the explained value F; ``conservation`` is ``Σ relevance / F``."""

    relevance: torch.Tensor
    output: float

    @property
    def total(self) -> float:
        return float(self.relevance.sum())

    @property
    def conservation(self) -> float:
        return self.total / self.output if abs(self.output) > 1e-12 else float("nan")

    def positive(self) -> torch.Tensor:
        """Evidence for the output (relevance clipped at 0 from below)."""
        return self.relevance.clamp_min(0.0)

    def negative(self) -> torch.Tensor:
        """Evidence against the output (relevance clipped at 0 from above; ≤ 0)."""
        return self.relevance.clamp_max(0.0)


def lrp(forward: nn.Module, x: torch.Tensor, *, epsilon: float = DEFAULT_EPSILON,
        norm_rule: NormRule | str = NormRule.centred, network: nn.Module | None = None
        ) -> Relevance:
    """LRP-ε relevance of ``forward(x)`` (a scalar per sample; ``x`` has batch size 1).

    ``network``: the module to apply the rules to (default ``forward.generator`` when present,
    else ``forward``): a :class:`~gdsynth.explain.attribution.LesionForward`'s own masking,
    padding and slice unfolding are linear and bias-free, so they need no rule."""
    if x.shape[0] != 1:
        raise ValueError(f"lrp explains one sample at a time, got a batch of {x.shape[0]}")
    net = network if network is not None else getattr(forward, "generator", forward)
    was_training = net.training
    net.eval()
    try:
        with lrp_rules(net, epsilon, norm_rule):
            inp = x.detach().clone().requires_grad_(True)
            out = forward(inp)
            value = out.reshape(-1)[0]
            (grad,) = torch.autograd.grad(value, inp)
    finally:
        net.train(was_training)
    return Relevance((inp.detach() * grad)[0], float(value.detach()))
