"""torch.compile of the generator: same maps as eager (plain and MC dropout), one compilation
for every exam shape, eager fallback with one warning when compilation fails."""

from __future__ import annotations

import logging

import pytest
import torch

from gdsynth.errors import ConfigError
from gdsynth.inference import compiled as C
from gdsynth.inference.mc import split_mean_std
from gdsynth.inference.pipeline import SynthesisSettings, build_predictor, use_compile
from gdsynth.inference.volume import predict_volume
from gdsynth.models.card import ModelCard
from gdsynth.models.unet import UNetGenerator

CARD = ModelCard(architecture={"name": "unet"}, mode="2.5d", context_slices=1)
needs_compiler = pytest.mark.skipif(
    C.compile_unsupported("cpu") is not None,
    reason=f"torch.compile (Inductor, CPU) unavailable: {C.compile_unsupported('cpu')}")


def _unet(seed: int = 0, dropout: float = 0.5) -> UNetGenerator:
    """Tiny 2-level U-Net (8 features): compiles in seconds."""
    torch.manual_seed(seed)
    return UNetGenerator(in_channels=9, features=8, depth=2, max_features=16, dropout=dropout,
                         heads=["enhancing"]).eval()


def _predict(gen, vol, **settings) -> torch.Tensor:
    s = SynthesisSettings(batch_size=4, **settings)
    return predict_volume(build_predictor(gen, s), vol, CARD, size_multiple=4, batch_size=4)


@needs_compiler
def test_compiled_matches_eager_and_compiles_once() -> None:
    gen = _unet()
    # "exams" with other slice sizes (one square); 9 slices = batches 4, 4, 1 (padded to 2)
    vols = [torch.randn(3, 20, 28, 9), torch.randn(3, 26, 17, 6), torch.randn(3, 24, 24, 5)]
    graphs = C.compile_counters()["graphs"]
    got = [_predict(gen, vol, compile="on") for vol in vols]
    assert C.compile_counters()["graphs"] == graphs + 1  # one graph for every exam
    assert C.compiled_model(gen).active
    for vol, out in zip(vols, got, strict=True):
        want = _predict(gen, vol, compile="off")
        assert out.shape == want.shape
        torch.testing.assert_close(out, want, rtol=0, atol=1e-5)


@needs_compiler
def test_mc_dropout_compiled_matches_eager() -> None:
    gen = _unet(seed=1)
    vol = torch.randn(3, 20, 16, 7)
    mc = {"mc_samples": 3, "seed": 5}
    predictor = build_predictor(gen, SynthesisSettings(batch_size=4, compile="on", **mc))
    assert predictor.shared.compiled is not None  # the compiled encoder/decoder path
    graphs = C.compile_counters()["graphs"]
    got = _predict(gen, vol, compile="on", **mc)  # batches of 4, 3 slices
    _predict(gen, torch.randn(3, 12, 28, 5), compile="on", **mc)  # another exam: 4, 1 slices
    assert C.compile_counters()["graphs"] == graphs + 2  # encoder and decoder, once
    assert predictor.shared.compiled.active
    torch.testing.assert_close(got, _predict(gen, vol, compile="off", **mc), rtol=0, atol=1e-5)
    assert torch.equal(got, _predict(gen, vol, compile="on", **mc))  # reproducible with the seed
    other = _predict(gen, vol, compile="on", mc_samples=3, seed=6)
    assert not torch.allclose(got, other)  # another seed, other masks
    _, std = split_mean_std(got)
    assert std.mean() > 0  # samples differ
    assert not any(m.training for m in gen.modules())


def test_compile_failure_falls_back_to_eager(monkeypatch, caplog) -> None:
    gen = _unet(seed=2)
    vol = torch.randn(3, 12, 12, 5)
    want = _predict(gen, vol, compile="off")

    def broken(*args, **kwargs):
        raise RuntimeError("no working C++ compiler\nsecond line")

    monkeypatch.setattr(C, "compile_unsupported", lambda device: None)
    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="gdsynth.inference.compiled"):
        got = _predict(gen, vol, compile="on")
        again = _predict(gen, vol, compile="on")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)  # batch 1 is padded to 2: rounding
    assert torch.equal(again, got)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "torch.compile failed" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()


def test_failing_compiled_call_falls_back(monkeypatch, caplog) -> None:
    gen = _unet(seed=3)
    vol = torch.randn(3, 12, 12, 5)
    mc = {"mc_samples": 2, "seed": 1}
    want = _predict(gen, vol, compile="off", **mc)

    def lazy_failure(fn, **kwargs):  # compiles "fine", fails at the first call (as Inductor does)
        def call(*args):
            raise RuntimeError("InductorError: CppCompileError")
        return call

    monkeypatch.setattr(C, "compile_unsupported", lambda device: None)
    monkeypatch.setattr(torch, "compile", lazy_failure)
    with caplog.at_level(logging.WARNING, logger="gdsynth.inference.compiled"):
        got = _predict(gen, vol, compile="on", **mc)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert any("torch.compile failed" in r.getMessage() for r in caplog.records)
    assert not C.compiled_unet(gen).active


def test_no_compiler_warns_and_runs_eagerly(monkeypatch, caplog) -> None:
    monkeypatch.setattr(C, "cpp_compiler", lambda: None)
    monkeypatch.setattr(C, "_WARNED", set())
    gen = _unet(seed=4)
    with caplog.at_level(logging.WARNING, logger="gdsynth.inference.compiled"):
        assert not use_compile(gen, SynthesisSettings(compile="on"))
        assert not use_compile(gen, SynthesisSettings(compile="on"))
    assert [r.getMessage() for r in caplog.records] == [
        "torch.compile unavailable (no C++ compiler found (set CXX or install g++)); "
        "running the generator eagerly"]
    assert not C.resolve_compile("auto", "cpu", 10_000)


def test_resolve_compile_choices(monkeypatch) -> None:
    monkeypatch.setattr(C, "cpp_compiler", lambda: "g++")
    assert C.resolve_compile("on", "cpu", 1) and C.resolve_compile(True, "cpu", 1)
    assert not C.resolve_compile("off", "cpu", 10_000) and not C.resolve_compile(False, "cpu", 99)
    assert not C.resolve_compile("auto", "cpu", C.AUTO_MIN_SAMPLES - 1)
    assert C.resolve_compile("auto", "cpu", C.AUTO_MIN_SAMPLES)
    assert not C.resolve_compile("auto", "meta", 10_000)  # auto: CPU only (measured there)
    assert C.CompileChoice.parse(C.CompileChoice.on) is C.CompileChoice.on
    with pytest.raises(ConfigError, match="choose one of auto, on, off"):
        C.CompileChoice.parse("sometimes")
    assert SynthesisSettings(compile=True).compile is C.CompileChoice.on
    assert SynthesisSettings(compile="OFF").compile is C.CompileChoice.off
    with pytest.raises(ConfigError, match="choose one of auto, on, off"):
        SynthesisSettings(compile="sometimes")


def test_cohort_auto_counts_exams_and_samples(monkeypatch, model_dir, tmp_path) -> None:
    from gdsynth.inference.cohort import RunConfig, Step, _Runner
    from tests.fixtures.inference import simple_prepare

    monkeypatch.setattr(C, "cpp_compiler", lambda: "g++")

    def resolved(n_exams: int, step: Step = Step.predict, **settings):
        runner = _Runner(RunConfig(out=tmp_path, model=model_dir, step=step, device="cpu",
                                   settings=SynthesisSettings(**settings)), simple_prepare)
        return runner.resolve_compile(n_exams)

    on, off = C.CompileChoice.on, C.CompileChoice.off
    assert resolved(15) is off and resolved(16) is on  # 1 mm exams (no card spacing)
    assert resolved(2, mc_samples=8) is on and resolved(1, mc_samples=8) is off
    assert resolved(100, compile="off") is off and resolved(1, compile="on") is on
    assert resolved(100, step=Step.detect) is C.CompileChoice.auto  # detect does not synthesize


def test_cli_compile_option(capsys) -> None:
    from gdsynth.cli.main import main

    assert main(["synthesize", "--help"]) == 0
    assert "--compile" in capsys.readouterr().out
    assert main(["predict", "bids", "-m", "phantom", "-o", "out", "--compile", "sometimes"]) == 2
