"""Lesion CVAE: shapes, loss decreases, samples differ from their source patches, save/load,
and the data module appending generated patches to training batches."""

from __future__ import annotations

import numpy as np
import torch

from gdsynth.data.module import DataConfig, GdsynthDataModule
from gdsynth.data.subjects import AddLesionLabels, make_subject
from gdsynth.models.cvae import (
    LesionCVAE,
    lesion_patches,
    load_cvae,
    sample_patches,
    save_cvae,
    train_cvae,
)
from tests.data.fakes import write_fake_cohort

torch.set_num_threads(1)
ORDER = ["T1w", "T2w", "FLAIR", "T1w_gd"]


def _bank(tmp_path, n=3, patch=16):
    exams = write_fake_cohort(tmp_path, n)
    parts = []
    for exam in exams:
        s = AddLesionLabels()(make_subject(exam, ORDER[:3]))
        parts.append(lesion_patches({k: s[k].data[0].numpy() for k in ORDER},
                                    s["lesion"].data[0].numpy(), s["brain"].data[0].numpy(),
                                    ORDER, patch))
    return exams, tuple(torch.cat([p[i] for p in parts]) for i in range(3))


def test_shapes_training_and_sampling(tmp_path):
    _, (x, mask, brain) = _bank(tmp_path)
    assert x.shape[1:] == (4, 16, 16) and mask.shape == brain.shape == (len(x), 1, 16, 16)
    assert len(x) >= 3 and all(mask[i].sum() > 0 for i in range(len(x)))
    centre = x[:, :, 8, 8]  # patches are centred on enhancing lesions: post − pre > 0
    assert float((centre[:, 3] - centre[:, 0]).mean()) > 0.3
    model = LesionCVAE(channels=4, patch=16, latent=4, features=8)
    recon, mu, logvar = model(x, mask)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (len(x), 4)
    history = train_cvae(model, x, mask, steps=60, batch_size=8, lr=3e-3)
    assert np.mean(history[-10:]) < 0.6 * np.mean(history[:5])
    out = sample_patches(model, x, mask, brain, 6, context_slices=1, seed=1)
    assert out["input"].shape == (6, 9, 16, 16) and out["target"].shape == (6, 1, 16, 16)
    assert out["lesion"].sum() > 0
    region = out["lesion"].bool()
    assert not torch.allclose(out["input"][:, 3:6].mean(1, keepdim=True)[region],
                              torch.ones(int(region.sum())), atol=0.05)  # a lesion, not NAWM
    again = sample_patches(model, x, mask, brain, 6, context_slices=1, seed=2)
    assert not torch.allclose(out["target"], again["target"])
    folder = save_cvae(model, tmp_path / "cvae")
    loaded = load_cvae(folder)
    torch.manual_seed(0)
    a = loaded.decode(torch.zeros(1, 4), torch.ones(1, 5, 16, 16))
    b = model.decode(torch.zeros(1, 4), torch.ones(1, 5, 16, 16))
    torch.testing.assert_close(a, b)


def test_data_module_appends_generated_patches(tmp_path):
    exams, (x, mask, _) = _bank(tmp_path)
    model = LesionCVAE(channels=4, patch=16, latent=4, features=8)
    train_cvae(model, x, mask, steps=5)
    folder = save_cvae(model, tmp_path / "cvae")
    cfg = DataConfig(patch_size=16, batch_size=4, samples_per_volume=4, queue_length=8,
                     num_workers=0, val_fraction=0.0, cvae=str(folder), cvae_per_batch=2,
                     all_lesion_labels=True)
    cfg.augment.enabled = False
    dm = GdsynthDataModule(exams=exams, config=cfg, seed=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input"].shape == (6, 9, 16, 16)
    assert set(batch) >= {"target", "pre", "brain", "lesion", "lesions_all"}
    assert all(v.shape[0] == 6 for v in batch.values())
