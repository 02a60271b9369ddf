"""A small conditional VAE of lesion patches, to enlarge the training set with new lesions.

Layouts (2D axial patches, normalized intensities, NAWM = 1):

* ``x`` ``(B, C, P, P)``: the pre-contrast sequences then the post-Gd T1w (``C = S + 1``);
* ``mask`` ``(B, 1, P, P)``: the lesion (0/1);
* condition ``(B, C + 1, P, P)`` = the mask and the *context*: ``x`` with the lesion region
  (mask dilated by ``grow`` voxels) replaced by 1.0, i.e. the surrounding tissue only.

The encoder ``q(z | x, condition)`` and the decoder ``p(x | z, condition)`` are small conv nets;
the decoder's output replaces only the lesion region, the context passes through. Loss: L1 in the
lesion region + ``beta`` × KL(q ‖ N(0, I)) (:meth:`LesionCVAE.loss`). Sampling ``z ~ N(0, I)``
with a (randomly flipped/rotated) lesion mask in another patch's context gives a new lesion:
:func:`sample_patches` returns generator-ready samples ``input (n, S*(2k+1), P, P)``, ``target``,
``pre``, ``brain``, ``lesion`` ``(n, 1, P, P)`` (:mod:`gdsynth.data.patches` layout; 2.5D context
slices repeat the generated slice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def dilate_lesion(mask: torch.Tensor, grow: int) -> torch.Tensor:
    """``mask`` (B, 1, P, P) dilated by ``grow`` voxels (max pooling)."""
    return F.max_pool2d(mask, 2 * grow + 1, stride=1, padding=grow) if grow > 0 else mask


def condition(x: torch.Tensor, mask: torch.Tensor, grow: int = 1) -> torch.Tensor:
    """``(B, C + 1, P, P)``: mask, then ``x`` with the lesion region set to 1.0 (NAWM)."""
    region = dilate_lesion(mask, grow)
    return torch.cat([mask, x * (1 - region) + region], 1)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(4, cout),
                         nn.LeakyReLU(0.2))


class LesionCVAE(nn.Module):
    """Conditional VAE on ``(B, channels, patch, patch)`` lesion patches; ``patch % 4 == 0``."""

    def __init__(self, *, channels: int = 4, patch: int = 32, latent: int = 16,
                 features: int = 16, grow: int = 1) -> None:
        super().__init__()
        if patch % 4:
            raise ValueError(f"patch must be a multiple of 4, got {patch}")
        self.kwargs: dict[str, Any] = {"channels": channels, "patch": patch, "latent": latent,
                                       "features": features, "grow": grow}
        self.channels, self.latent, self.grow = channels, latent, grow
        f = features
        self.encoder = nn.Sequential(_block(2 * channels + 1, f), _block(f, 2 * f, 2),
                                     _block(2 * f, 2 * f, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.to_stats = nn.Linear(2 * f, 2 * latent)
        self.decoder = nn.Sequential(_block(channels + 1 + latent, f), _block(f, f), _block(f, f),
                                     nn.Conv2d(f, channels, 3, padding=1))

    def encode(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_stats(self.encoder(torch.cat([x, cond], 1))).chunk(2, 1)
        return mu, logvar.clamp(-8, 8)

    def decode(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``(B, latent)``, condition → ``(B, channels, P, P)``: context outside the region,
        generated intensities (1 + decoder output) inside."""
        zmap = z[:, :, None, None].expand(-1, -1, *cond.shape[2:])
        inside = 1.0 + self.decoder(torch.cat([cond, zmap], 1))
        region = dilate_lesion(cond[:, :1], self.grow)
        return cond[:, 1:] * (1 - region) + inside * region

    def forward(self, x: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cond = condition(x, mask, self.grow)
        mu, logvar = self.encode(x, cond)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z, cond), mu, logvar

    def loss(self, x: torch.Tensor, mask: torch.Tensor, beta: float = 0.05) -> dict[str, torch.Tensor]:
        """``recon`` (mean L1 in the lesion region), ``kl`` (per sample), ``total``."""
        recon, mu, logvar = self(x, mask)
        region = dilate_lesion(mask, self.grow).expand_as(x)
        l1 = ((recon - x).abs() * region).sum() / region.sum().clamp_min(1.0)
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1).mean()
        return {"recon": l1, "kl": kl, "total": l1 + beta * kl}

    @torch.no_grad()
    def sample(self, context: torch.Tensor, mask: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """New lesion patches ``(B, channels, P, P)`` in ``context`` patches under ``mask``."""
        z = torch.randn(context.shape[0], self.latent, generator=generator)
        return self.decode(z.to(context.device), condition(context, mask, self.grow))


def lesion_patches(images: Mapping[str, np.ndarray], lesion: np.ndarray, brain: np.ndarray,
                   order: Sequence[str], patch: int = 32) -> tuple[torch.Tensor, ...]:
    """Axial patches centred on each lesion component (26-connected) of one prepared exam.

    ``images``: (X, Y, Z) arrays keyed by ``order`` (pre sequences then ``T1w_gd``). Returns
    ``x (N, len(order), P, P)``, ``mask (N, 1, P, P)``, ``brain (N, 1, P, P)`` (float32; edges
    padded with 0 for images and masks).
    """
    from scipy import ndimage as ndi

    comps, n = ndi.label(lesion > 0, structure=np.ones((3, 3, 3)))
    stack = np.stack([np.asarray(images[k], np.float32) for k in order] +
                     [(brain > 0).astype(np.float32)])
    h = patch // 2
    padded = np.pad(stack, ((0, 0), (h, h), (h, h), (0, 0)))
    xs, ms, bs = [], [], []
    for c in range(1, n + 1):
        idx = np.argwhere(comps == c)
        areas = np.bincount(idx[:, 2])
        k = int(areas.argmax())
        i, j = (int(v) for v in idx[idx[:, 2] == k][:, :2].mean(0).round())
        win = padded[:, i : i + patch, j : j + patch, k]
        own = (comps[..., k] == c).astype(np.float32)
        own = np.pad(own, h)[i : i + patch, j : j + patch]
        xs.append(win[: len(order)])
        ms.append(own[None])
        bs.append(win[-1:])
    empty = torch.zeros(0, len(order), patch, patch)
    if not xs:
        return empty, empty[:, :1], empty[:, :1]
    return tuple(torch.from_numpy(np.stack(a)) for a in (xs, ms, bs))


def train_cvae(model: LesionCVAE, x: torch.Tensor, mask: torch.Tensor, *, steps: int = 200,
               batch_size: int = 16, lr: float = 2e-3, beta: float = 0.05, seed: int = 0
               ) -> list[float]:
    """Adam on random mini-batches (random flips); returns the total loss of each step."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    history = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=g)
        xb, mb = x[idx], mask[idx]
        if torch.rand(1, generator=g) < 0.5:
            xb, mb = xb.flip(-1), mb.flip(-1)
        loss = model.loss(xb, mb, beta)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    model.eval()
    return history


def sample_patches(model: LesionCVAE, x: torch.Tensor, mask: torch.Tensor, brain: torch.Tensor,
                   n: int, *, context_slices: int = 0, t1w_index: int = 0, seed: int = 0
                   ) -> dict[str, torch.Tensor]:
    """``n`` new training samples: random source patches (context) with another patch's lesion
    mask (random flip / 90° rotation) and a new lesion drawn from the CVAE. The last channel of
    ``x`` is the post-Gd T1w; ``t1w_index`` is the T1w's pre-contrast channel. Keys: ``input``
    ``(n, S*(2k+1), P, P)``, ``target``, ``pre``, ``brain``, ``lesion`` ``(n, 1, P, P)``."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, len(x), (n,), generator=g)
    lesion = mask[torch.randint(0, len(x), (n,), generator=g)].clone()
    for i in range(n):
        lesion[i] = torch.rot90(lesion[i], int(torch.randint(0, 4, (1,), generator=g)), (1, 2))
        if torch.rand(1, generator=g) < 0.5:
            lesion[i] = lesion[i].flip(-1)
    lesion = lesion * brain[src]
    model.eval()
    new = model.sample(x[src], lesion, generator=g)
    pre, post = new[:, :-1], new[:, -1:]
    per = 2 * context_slices + 1
    inputs = pre.repeat_interleave(per, dim=1)
    return {"input": inputs, "target": post, "pre": pre[:, t1w_index : t1w_index + 1], "brain": brain[src],
            "lesion": lesion}


def save_cvae(model: LesionCVAE, folder: str | Path) -> Path:
    """``folder/cvae.safetensors`` + ``folder/cvae.json`` (constructor kwargs); no pickle."""
    from safetensors.torch import save_file

    from gdsynth.io import write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "cvae.safetensors"))
    write_json(folder / "cvae.json", model.kwargs)
    return folder


def load_cvae(folder: str | Path) -> LesionCVAE:
    """Inverse of :func:`save_cvae` (eval mode)."""
    import json

    from safetensors.torch import load_file

    folder = Path(folder)
    model = LesionCVAE(**json.loads((folder / "cvae.json").read_text(encoding="utf-8")))
    model.load_state_dict(load_file(str(folder / "cvae.safetensors")))
    return model.eval()


class CVAEMixer:
    """Appends ``per_batch`` CVAE samples to every training batch (an iterable wrapper).

    ``bank`` = (x, mask, brain) from :func:`lesion_patches`; keys the batch has beyond the
    sample's (``lesions_all``) get the generated lesion mask, per-patch flags (1-D:
    ``has_target``, ``has_all_lesions``) a 1.
    """

    def __init__(self, model: LesionCVAE, bank: tuple[torch.Tensor, ...], per_batch: int, *,
                 context_slices: int = 0, t1w_index: int = 0, seed: int = 0) -> None:
        self.model, self.bank, self.per_batch = model, bank, int(per_batch)
        self.context_slices, self.t1w_index, self.seed = context_slices, t1w_index, seed
        self.calls = 0

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.per_batch <= 0 or len(self.bank[0]) == 0:
            return batch
        self.calls += 1
        extra = sample_patches(self.model, *self.bank, self.per_batch,
                               context_slices=self.context_slices, t1w_index=self.t1w_index,
                               seed=self.seed * 1_000_003 + self.calls)
        n = len(extra["lesion"])

        def more(k: str, v: torch.Tensor) -> torch.Tensor:  # per-patch flags (B,): 1, all targets
            return torch.ones(n, dtype=v.dtype) if v.dim() == 1 else extra.get(k, extra["lesion"])

        return {k: torch.cat([v, more(k, v).to(v.dtype)]) for k, v in batch.items()}

    def wrap(self, loader):  # -> Iterator[dict]
        for batch in loader:
            yield self(batch)
