"""``Pix2PixModule``: wires the U-Net generator, the PatchGAN and the losses with two optimizers
(manual optimization, as Lightning's GAN example). Networks stay plain ``nn.Module``s.

One training step, per batch of ``input (B, C_in, ...)``, ``pre``/``target``/``brain``/``lesion``
``(B, 1, ...)``: the discriminator sees ``concat(input, y)`` where ``y`` is the generator's target
space (post − pre when residual, else post), real vs generated; then the generator minimises
``adversarial_weight * GAN + l1_weight * L1 (+ ssim_weight * (1 − SSIM))``.

Mixed batches (mask-only exams, :mod:`gdsynth.data.patches`): L1, SSIM, both adversarial terms
and the ``enhancing`` head are computed over the patches whose ``has_target`` flag is set, the
``lesions`` head over those whose ``has_all_lesions`` flag is set (a batch without the flag: every
patch); a term with no such patch in the batch is left out (not logged, no NaN), and a step
without any term updates nothing.

Precision (``trainer.precision``, :class:`gdsynth.runtime.Precision`): with ``bf16`` the
Trainer runs each training step in bf16 autocast (Lightning ``bf16-mixed``; the manual
optimization here runs inside it too). Weights, Adam states, instance-norm statistics (computed
in float32 by the norm kernels), the losses and their reductions stay float32: network outputs
are cast to float32 before any loss. On CPU the networks and the input batch use the
channels-last memory format (``trainer.channels_last``), which oneDNN's convolutions prefer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from gdsynth.errors import ConfigError, TrainingError
from gdsynth.models.card import Mode
from gdsynth.models.losses import AdversarialLoss, ssim_loss, weighted_l1
from gdsynth.models.registry import build_discriminator, build_generator
from gdsynth.training.config import TrainConfig
from gdsynth.training.metrics import (
    detection_f1,
    f1_from_counts,
    masked_mae,
    masked_psnr,
    masked_ssim,
)
from gdsynth.training.volume import crop_to_mask

#: head name -> batch key of its binary target: ``enhancing`` the enhancing-lesion map used for
#: sampling, ``lesions`` every lesion visible before injection (phantom all-lesion truth, else
#: FLAIR hyperintensity; see :class:`gdsynth.data.subjects.AddLesionLabels`).
HEAD_TARGETS = {"enhancing": "lesion", "lesions": "lesions_all"}
#: head name -> batch flag of the patches its loss uses (absent flag: every patch).
HEAD_FLAGS = {"enhancing": "has_target", "lesions": "has_all_lesions"}


def flagged(batch: dict[str, torch.Tensor], flag: str) -> torch.Tensor:
    """``(B,)`` bool: the patches of ``batch`` whose per-patch ``flag`` is set (all of them when
    the batch has no such flag: every patch has that target)."""
    n = batch["input"].shape[0]
    if flag not in batch:
        return torch.ones(n, dtype=torch.bool, device=batch["input"].device)
    return batch[flag].reshape(n) > 0.5


def rows_of(batch: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """The patches ``rows`` of ``batch`` (itself when every row is kept)."""
    if bool(rows.all()):
        return batch
    return {k: v[rows] if torch.is_tensor(v) and v.dim() > 0 else v for k, v in batch.items()}


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 − soft Dice`` of ``sigmoid(logits)`` vs a 0/1 ``target`` (same shape), pooled over the
    batch; ``eps`` (voxels) keeps empty patches finite and near 0."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    return 1.0 - (2.0 * inter + eps) / (p.sum() + target.sum() + eps)


def head_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """BCE with logits (+ ``dice_weight`` × soft Dice) of one head; tensors ``(B, 1, ...)``."""
    loss = F.binary_cross_entropy_with_logits(logits, target)
    return loss + dice_weight * soft_dice_loss(logits, target) if dice_weight > 0 else loss


def generator_kwargs(config: TrainConfig) -> dict[str, Any]:
    """Keyword arguments of the generator ``config`` trains (``generator.name`` in the registry)."""
    g = config.generator
    return {"in_channels": config.data.in_channels, "spatial_dims": spatial_dims(config),
            "features": g.features, "depth": g.depth, "dropout": g.dropout, "norm": g.norm,
            "max_features": g.max_features, "heads": g.heads, "upsample": g.upsample}


def discriminator_kwargs(config: TrainConfig) -> dict[str, Any]:
    """Keyword arguments of the PatchGAN ``config`` trains (it sees input + target channels)."""
    d = config.discriminator
    return {"in_channels": config.data.in_channels + 1, "features": d.features,
            "n_layers": d.n_layers, "spatial_dims": spatial_dims(config), "norm": d.norm,
            "spectral_norm": d.spectral_norm}


def spatial_dims(config: TrainConfig) -> int:
    """3 for 3D patches, else 2 (2D and 2.5D slices)."""
    return 3 if config.data.mode == Mode.three_d.value else 2


class Pix2PixModule(pl.LightningModule):
    """pix2pix training of ``config`` (a :class:`TrainConfig` as a plain dict, saved as hparams)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = TrainConfig.from_dict(config)
        c = self.cfg
        bad = [h for h in c.generator.heads if h not in HEAD_TARGETS]
        if bad:
            raise ConfigError(None, f"heads {bad} cannot be trained yet; trainable: {list(HEAD_TARGETS)}")
        self.automatic_optimization = False
        self.spatial_dims = spatial_dims(c)
        self.generator = build_generator(c.generator.name, **generator_kwargs(c))
        self.use_gan = c.loss.adversarial_weight > 0
        self.discriminator = build_discriminator(
            "patchgan", **discriminator_kwargs(c)) if self.use_gan else None
        self.adversarial = AdversarialLoss(criterion=c.loss.adversarial)
        self.nonfinite = 0
        self._val_counts: dict[str, float] = {}

    # -- helpers ---------------------------------------------------------------------------
    @property
    def batches_seen(self) -> int:
        """Training batches so far: Lightning's global_step, counted once per batch."""
        return self.global_step

    def _uncounted(self, opt) -> None:
        """Make ``opt.step()`` leave Lightning's step counter alone. With manual optimization
        Lightning counts every optimizer step, so D + G made ``global_step`` (and
        ``trainer.max_steps``) twice the number of batches, and a skipped (non-finite) step none:
        :meth:`_count_batch` counts each batch once instead."""
        profiler = self.trainer.profiler
        opt._on_before_step = lambda: profiler.start("optimizer_step")
        opt._on_after_step = lambda: profiler.stop("optimizer_step")

    def _count_batch(self) -> None:
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        progress.increment_completed()

    def goal(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """What channel 0 must predict: post − pre (residual) or post."""
        return batch["target"] - batch["pre"] if self.cfg.generator.residual else batch["target"]

    def synthetic_post(self, channel0: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        return channel0 + pre if self.cfg.generator.residual else channel0

    def _finite(self, loss: torch.Tensor, which: str) -> bool:
        """Count a non-finite loss (skipping its step); raise after ``optim.max_nonfinite``."""
        if torch.isfinite(loss).all():
            return True
        self.nonfinite += 1
        self.log("train/nonfinite_steps", float(self.nonfinite))
        limit = self.cfg.optim.max_nonfinite
        if self.nonfinite > limit:
            raise TrainingError(
                None, f"{self.nonfinite} non-finite {which} losses (limit optim.max_nonfinite="
                f"{limit}); training stopped. Lower the learning rates or check the data")
        return False

    def generator_loss(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms of the generator except the adversarial one (``l1``, ``ssim``, heads), each
        over the patches that have its target (:data:`HEAD_FLAGS`, ``has_target``); a term
        without any such patch in the batch is absent."""
        lc = self.cfg.loss
        out = out.float()  # bf16 autocast: losses and their reductions in float32
        terms: dict[str, torch.Tensor] = {}
        rows = flagged(batch, "has_target")
        if bool(rows.any()):
            t = rows_of(batch, rows)
            synth = out[:, :1] if t is batch else out[rows, :1]
            mask = t["brain"] if lc.brain_mask else None
            terms["l1"] = weighted_l1(synth, self.goal(t), mask=mask, lesion=t.get("lesion"),
                                      lesion_weight=lc.lesion_weight)
            if lc.ssim_weight > 0:
                terms["ssim"] = ssim_loss(self.synthetic_post(synth, t["pre"]), t["target"],
                                          data_range=lc.ssim_data_range, mask=mask)
        for i, head in enumerate(self.cfg.generator.heads, start=1):
            key = HEAD_TARGETS[head]
            if key not in batch:
                raise TrainingError(None, f"head {head!r} needs batch[{key!r}]; set "
                                    "data.all_lesion_labels (automatic for the lesions head)")
            keep = flagged(batch, HEAD_FLAGS[head])
            if bool(keep.any()):
                logits, target = out[:, i : i + 1], batch[key]
                if not bool(keep.all()):
                    logits, target = logits[keep], target[keep]
                terms[f"head_{head}"] = head_loss(logits, target, lc.head_dice_weight)
        return terms

    def total_generator_loss(self, terms: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The weighted sum of ``terms`` (None when there is none: nothing to learn from)."""
        lc = self.cfg.loss
        if not terms:
            return None
        heads = [lc.head_weights.get(k[5:], 1.0) * v for k, v in terms.items()
                 if k.startswith("head_")]
        total = 0.0
        if "l1" in terms:  # (added in the order of earlier versions: same float results)
            total = lc.l1_weight * terms["l1"] + lc.ssim_weight * terms.get("ssim", 0.0)
        total = total + sum(heads)
        if "adv" in terms:
            total = total + lc.adversarial_weight * terms["adv"]
        return total  # type: ignore[return-value]

    def _discriminator_step(self, opt_d, x: torch.Tensor, goal: torch.Tensor,
                            synth: torch.Tensor) -> torch.Tensor:
        """One discriminator update on real ``(x, goal)`` vs generated ``(x, synth)``."""
        oc = self.cfg.optim
        self.toggle_optimizer(opt_d)
        real = self.discriminator(self._layout(torch.cat([x, goal], 1))).float()
        fake = self.discriminator(self._layout(torch.cat([x, synth.detach()], 1))).float()
        d_loss = 0.5 * (self.adversarial(real, True, True) + self.adversarial(fake, False, True))
        self._update(opt_d, d_loss, oc.grad_clip_d, "discriminator")
        self.untoggle_optimizer(opt_d)
        return d_loss.detach()

    def _update(self, opt, loss: torch.Tensor | None, clip: float, what: str) -> None:
        """One optimizer step on ``loss`` (none when it is None or not finite: ``_finite``
        counts and logs that), gradients clipped to norm ``clip`` when > 0, then cleared."""
        if loss is not None and self._finite(loss, what):
            self.manual_backward(loss)
            if clip > 0:
                self.clip_gradients(opt, gradient_clip_val=clip, gradient_clip_algorithm="norm")
            opt.step()
        opt.zero_grad(set_to_none=True)

    # -- training --------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        oc = self.cfg.optim
        opts = self.optimizers()
        opt_g, opt_d = (opts[0], opts[1]) if isinstance(opts, list) else (opts, None)
        for opt in (opt_g, opt_d):
            if opt is not None:
                self._uncounted(opt)
        x = self._layout(batch["input"])
        out = self.generator(x)
        rows = flagged(batch, "has_target")  # the adversarial terms need a real target
        some, every = bool(rows.any()), bool(rows.all())
        x_t, synth_t = (x, out[:, :1]) if every else (x[rows], out[rows, :1])
        logs: dict[str, torch.Tensor] = {}
        if self.discriminator is not None and opt_d is not None and some:
            goal = self.goal(batch if every else rows_of(batch, rows))
            logs["train/loss_d"] = self._discriminator_step(opt_d, x_t, goal, synth_t)
        self.toggle_optimizer(opt_g)
        terms = self.generator_loss(out, batch)
        if self.discriminator is not None and some:
            fake = self.discriminator(self._layout(torch.cat([x_t, synth_t], 1))).float()
            terms["adv"] = self.adversarial(fake, True, False)
        g_loss = self.total_generator_loss(terms)
        self._update(opt_g, g_loss, oc.grad_clip_g, "generator")
        self.untoggle_optimizer(opt_g)
        self._count_batch()
        if g_loss is not None:
            logs["train/loss_g"] = g_loss.detach()
        logs.update({f"train/{k}": v.detach() for k, v in terms.items()})
        self.log_dict(logs, prog_bar=True, batch_size=x.shape[0])

    @property
    def channels_last(self) -> bool:
        """Whether the step runs channels-last: ``trainer.channels_last`` on a CPU device, for 2D
        (and 2.5D) networks."""
        return bool(self.cfg.trainer.channels_last) and self.spatial_dims == 2 \
            and self.device.type == "cpu"

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def setup(self, stage: str) -> None:
        """Channels-last parameters on CPU, once, before the optimizers and any DDP wrapper are
        built (the parameters keep the layout, and so do Adam's states)."""
        from pytorch_lightning.accelerators import CPUAccelerator

        if self.cfg.trainer.channels_last and self.spatial_dims == 2 \
                and isinstance(self.trainer.accelerator, CPUAccelerator):
            self.to(memory_format=torch.channels_last)

    def configure_optimizers(self):
        oc = self.cfg.optim
        betas = (oc.beta1, oc.beta2)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=oc.lr_g, betas=betas)
        if self.discriminator is None:
            return opt_g
        return [opt_g, torch.optim.Adam(self.discriminator.parameters(), lr=oc.lr_d, betas=betas)]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gdsynth_nonfinite"] = self.nonfinite

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.nonfinite = int(checkpoint.get("gdsynth_nonfinite", 0))

    # -- validation on whole volumes -----------------------------------------------------------
    def _predict_volume(self, volume: torch.Tensor) -> torch.Tensor:
        """Whole-volume prediction exactly as inference does it (one code path for both)."""
        from gdsynth.inference.predictor import make_predictor
        from gdsynth.inference.volume import predict_volume
        from gdsynth.models.card import ModelCard

        dc = self.cfg.data
        card = ModelCard(architecture={"name": "unet"}, inputs=list(dc.inputs), mode=dc.mode,
                         context_slices=dc.context_slices,
                         patch_size=[dc.patch_size] * 3 if dc.mode == "3d" else None)
        # float32 whatever the training precision: validation metrics stay comparable
        predictor = make_predictor(self.generator, precision="fp32",
                                   channels_last=self.channels_last)
        return predict_volume(predictor, volume, card,
                              size_multiple=int(getattr(self.generator, "size_multiple", 1)),
                              batch_size=self.cfg.validation.slice_batch)

    def on_validation_epoch_start(self) -> None:
        self._val_counts = {"detected": 0.0, "n_truth": 0.0, "tp_pred": 0.0, "n_pred": 0.0}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, float]:
        vc = self.cfg.validation
        vol = crop_to_mask({k: v for k, v in batch.items() if torch.is_tensor(v)}, batch["brain"])
        out = self._predict_volume(vol["input"])
        pre, real, brain = (vol[k][0].float().cpu() for k in ("pre", "target", "brain"))
        lesion = vol["lesion"][0].cpu() if "lesion" in vol else torch.zeros_like(brain)
        synth = self.synthetic_post(out[0].float().cpu(), pre)
        metrics = {"mae_brain": masked_mae(synth, real, brain),  # names: training.metrics.VAL_METRICS
                   "psnr_brain_volume_range": masked_psnr(synth, real, brain),
                   "ssim_brain_2d_slices": masked_ssim(synth, real, brain),
                   "mae_lesion": masked_mae(synth, real, lesion),
                   "psnr_lesion_volume_range": masked_psnr(synth, real, lesion)}
        det = detection_f1((synth - pre).numpy(), lesion.numpy(), brain.numpy(),
                           threshold=vc.detection_threshold, min_voxels=vc.min_lesion_voxels)
        for k in self._val_counts:
            self._val_counts[k] += det[k]
        finite = {f"val/{k}": v for k, v in metrics.items() if math.isfinite(v)}
        self.log_dict(finite, batch_size=1, sync_dist=True)
        if batch_idx == 0 and vc.panels and self.trainer.is_global_zero:
            self._log_panel(pre.numpy(), real.numpy(), synth.numpy(), lesion.numpy(),
                            brain.numpy(), str(batch.get("id", "")))
        return metrics

    def on_validation_epoch_end(self) -> None:
        if not self._val_counts:
            return
        summary = f1_from_counts(self._val_counts)
        self.log_dict({f"val/detection_{k}": float(v) for k, v in summary.items()}, sync_dist=True)

    def _log_panel(self, pre: np.ndarray, real: np.ndarray, synth: np.ndarray, lesion: np.ndarray,
                   brain: np.ndarray, case: str) -> None:
        from gdsynth.training.panels import best_slice, panel_figure, save_figure

        z = best_slice(lesion, brain)
        fig = panel_figure(pre[..., z], real[..., z], synth[..., z], lesion[..., z],
                           title=f"{case} z={z} step {self.batches_seen}")
        fig.canvas.draw()
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        root = Path(self.trainer.default_root_dir)
        save_figure(fig, root / "panels" / f"val-step{self.batches_seen:07d}.png")
        logger = self.logger
        if logger is None:
            return
        if hasattr(logger, "log_image"):  # WandbLogger
            logger.log_image(key="val/panel", images=[rgb], step=self.global_step)
        elif hasattr(getattr(logger, "experiment", None), "add_image"):  # TensorBoard
            logger.experiment.add_image("val/panel", rgb, self.global_step, dataformats="HWC")
