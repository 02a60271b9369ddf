"""DetectionParams: JSON round trip and validation."""

import json

import pytest

from gdsynth.detection import DetectionParams, Detector, parse_detector
from gdsynth.errors import ConfigError


def test_params_round_trip_through_json():
    p = DetectionParams(high=0.3, low=0.1, detector="combined", nawm_shell_mm=(1.5, 5.0),
                        score_coefficients={"intercept": -2.0}, calibration_info={"n_cases": 3})
    back = DetectionParams.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p
    assert back.score_coefficients["intercept"] == -2.0
    assert back.score_coefficients["max_enhancement"] == 3.0  # defaults filled in


def test_params_in_model_card(tmp_path):
    from gdsynth.models.card import ModelCard

    p = DetectionParams(refer_threshold=0.2)
    card = ModelCard(architecture={"name": "unet"}, detection=p.to_dict())
    path = card.save(tmp_path / "model_card.json")
    assert DetectionParams.from_dict(ModelCard.load(path).detection) == p


def test_bad_detector_lists_valid_choices():
    with pytest.raises(ConfigError, match="difference, segmentation, combined"):
        parse_detector("magic")
    assert parse_detector("segmentation") is Detector.segmentation


@pytest.mark.parametrize(
    "changes",
    [{"high": 0.1, "low": 0.2}, {"unknown_key": 1}, {"score_coefficients": {"nope": 1.0}},
     {"target_sensitivity": 0.0}],
)
def test_invalid_params_raise(changes):
    with pytest.raises(ConfigError):
        DetectionParams.from_dict({**DetectionParams().to_dict(), **changes})
