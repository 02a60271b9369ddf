"""The detector registry: one Enum member and one candidates function per detector."""

import pytest

from gdsynth.detection import DETECTORS, DetectionParams, Detector, detect_lesions
from gdsynth.errors import ConfigError
from tests.detection.synthetic import full_exam

PARAMS = DetectionParams(min_brain_ml=10.0)


def test_every_detector_has_its_candidates_and_says_whether_it_needs_the_head():
    assert set(DETECTORS) == set(Detector)
    assert [d.value for d in Detector if d.needs_head] == ["segmentation", "combined"]
    assert Detector("combined") is Detector.combined  # looked up by name (settings, card, CLI)


def test_params_hold_the_enum_and_write_its_name():
    p = DetectionParams(detector="segmentation")
    assert p.detector is Detector.segmentation and p.to_dict()["detector"] == "segmentation"
    with pytest.raises(ConfigError, match="difference, segmentation, combined"):
        DetectionParams(detector="magic")


def test_a_detector_that_needs_the_head_refuses_to_run_without_it():
    exam = full_exam(seed=5)
    for det in Detector:
        params = PARAMS.replace(detector=det)
        if det.needs_head:
            with pytest.raises(ConfigError, match=f"detector '{det.value}' needs heads"):
                detect_lesions(exam.enhancement, **exam.inputs(), params=params)
        else:
            assert detect_lesions(exam.enhancement, **exam.inputs(), params=params).summary[
                "detector"] == det.value


def test_predict_help_lists_every_detector():
    from typer.testing import CliRunner

    from gdsynth.cli.main import app

    out = CliRunner().invoke(app, ["predict", "--help"], terminal_width=200).output
    assert all(d.value in out for d in Detector)
