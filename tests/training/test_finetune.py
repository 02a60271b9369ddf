"""Fine-tuning (``--init-from``): the run starts from the source's weights, a source that does
not fit the recipe is refused before anything is written, and the run records its source."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from gdsynth.cli.main import main
from gdsynth.errors import ModelError
from gdsynth.io import file_sha256
from gdsynth.models.folder import load_model_folder
from gdsynth.training import cohort as cohort_mod
from gdsynth.training.config import InitConfig, TrainConfig
from gdsynth.training.export import build_card, export_model
from gdsynth.training.finetune import apply_init, load_init_source
from gdsynth.training.module import Pix2PixModule
from gdsynth.training.run import RunOptions, train_run
from tests.fixtures.training import TINY
from tests.training.test_cli_train import _already_prepared, _bids


def _source(tmp_path, tiny: TrainConfig, spacing_mm: float = 2.0):
    """An exported tiny model with random (non-default) weights: the model to fine-tune."""
    torch.manual_seed(123)
    generator = Pix2PixModule(tiny.to_dict()).generator
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    card = build_card(tiny, generator, spacing_mm=spacing_mm, training={"steps": 7})
    return export_model(tmp_path / "source", generator, card)


def _discriminator(tmp_path, config: TrainConfig, folder):
    """Write a perturbed discriminator of ``config`` into ``folder``; return its state."""
    from safetensors.torch import save_file

    torch.manual_seed(5)
    state = {k: v + 0.1 for k, v in Pix2PixModule(config.to_dict()).discriminator.state_dict().items()}
    save_file(state, str(folder / "discriminator.safetensors"))
    return state


def _with_init(config: TrainConfig, model) -> TrainConfig:
    return dataclasses.replace(config, init=InitConfig(model=str(model)))


def test_init_from_starts_from_the_source_weights_and_records_it(cohort, tiny, tmp_path):
    source = _source(tmp_path, tiny)
    src_state, _ = load_model_folder(source)
    d_state = _discriminator(tmp_path, tiny, source)
    tiny.trainer.max_steps = 0  # export the weights as they are at step 0
    result = train_run(cohort, tmp_path / "ft0", _with_init(tiny, source),
                       RunOptions(val_exams=[]))
    start, card = load_model_folder(result.model_dir)
    for key, value in src_state.state_dict().items():
        torch.testing.assert_close(start.state_dict()[key], value, rtol=0, atol=0, msg=key)
    module = Pix2PixModule(tiny.to_dict())  # the folder's discriminator is loaded too
    apply_init(module, load_init_source(source))
    for key, value in d_state.items():
        torch.testing.assert_close(module.discriminator.state_dict()[key], value, rtol=0,
                                   atol=0, msg=key)
    sha = file_sha256(source / "generator.safetensors")
    assert card.training["init_from"] == {"model": str(source), "weights_sha256": sha}
    saved = yaml.safe_load((tmp_path / "ft0" / "config.yaml").read_text())
    assert saved["init"] == {"model": str(source), "sha256": sha}


def test_mismatched_source_is_refused_before_any_file(cohort, tiny, tmp_path):
    source = _source(tmp_path, tiny)
    wide = dataclasses.replace(tiny, generator=dataclasses.replace(tiny.generator, features=4))
    with pytest.raises(ModelError, match=r"features=8 \(recipe: 4\)"):
        train_run(cohort, tmp_path / "a", _with_init(wide, source))
    with pytest.raises(ModelError, match="trained at 1 mm; this run's exams are prepared at 2 mm"):
        train_run(cohort, tmp_path / "b", _with_init(tiny, _source(tmp_path / "s1", tiny, 1.0)))
    _discriminator(tmp_path, dataclasses.replace(
        tiny, discriminator=dataclasses.replace(tiny.discriminator, features=4)), source)
    with pytest.raises(ModelError, match="discriminator.safetensors: --init-from: does not fit"):
        train_run(cohort, tmp_path / "d", _with_init(tiny, source))
    pinned = dataclasses.replace(tiny, init=InitConfig(model=str(source), sha256="0" * 64))
    with pytest.raises(ModelError, match="init.sha256"):
        train_run(cohort, tmp_path / "c", pinned)
    assert not any((tmp_path / d).exists() for d in "abcd")


def test_cli_init_from_phantom_names_what_differs(tmp_path, monkeypatch, capsys, tiny):
    def never(*args, **kwargs):
        raise AssertionError("an exam was prepared before --init-from was checked")

    monkeypatch.setattr(cohort_mod, "prepare_cohort", never)
    bids = _bids(tmp_path / "bids")
    run = tmp_path / "run"
    code = main(["train", str(bids), "-o", str(run), "--config", str(TINY), "--init-from",
                 "phantom", "--set", "data.inputs=[T1w, FLAIR]"])
    err = capsys.readouterr().err
    assert code == 2 and ("model 'phantom' takes T1w, T2w, FLAIR; this run's recipe has T1w, "
                          "FLAIR") in err, err
    code = main(["train", str(bids), "-o", str(run), "--config", str(TINY), "--init-from",
                 "phantom"])
    err = capsys.readouterr().err
    assert code == 2 and "model 'phantom' has generator" in err and "features=16 (recipe: 8)" in err
    assert len(err.strip().splitlines()) == 1 and not run.exists()
    one_mm = _source(tmp_path, tiny, spacing_mm=1.0)  # the fake exams are 2 mm
    code = main(["train", str(bids), "-o", str(run), "--config", str(TINY), "--init-from",
                 str(one_mm)])
    err = capsys.readouterr().err
    assert code == 2 and "trained at 1 mm; this run's exams are prepared at 2 mm" in err, err
    assert not run.exists()


def test_cli_init_from_then_resume_keeps_the_source(tmp_path, monkeypatch, capsys, tiny):
    monkeypatch.setattr(cohort_mod, "prepare_cohort", _already_prepared)
    source = _source(tmp_path, tiny)
    bids = _bids(tmp_path / "bids")
    run = tmp_path / "run"
    code = main(["-q", "train", str(bids), "-o", str(run), "--config", str(TINY), "--max-steps",
                 "1", "--init-from", str(source), "--no-fit-detector"])
    assert code == 0, capsys.readouterr().err
    sha = file_sha256(source / "generator.safetensors")
    code = main(["train", str(bids), "-o", str(run), "--resume", "--max-steps", "2",
                 "--init-from", "phantom", "--no-fit-detector"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "--init-from phantom is not used" in err
    _, card = load_model_folder(run / "model")
    assert card.training["steps"] == 2
    assert card.training["init_from"] == {"model": str(source), "weights_sha256": sha}
