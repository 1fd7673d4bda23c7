from pathlib import Path

import pytest

from radiograph_deid.config import Config, ConfigError, load_config
from radiograph_deid.enums import NonImagePolicy

REPO = Path(__file__).resolve().parents[1]


def test_shipped_yaml_is_exactly_the_code_defaults() -> None:
    assert load_config(REPO / "configs" / "redact.yaml") == Config()


def test_overrides_are_typed_and_validated() -> None:
    cfg = load_config(overrides=["detector.long_side=1280", "retention.vocabulary=[l, r, d, i]",
                                 "input.non_image=header_only"])
    assert cfg.detector.long_side == 1280
    assert cfg.retention.vocabulary == ("L", "R", "D", "I")
    assert cfg.input.non_image is NonImagePolicy.HEADER_ONLY
    cfg = load_config(overrides=["verify.long_side=1600.0", "header.pseudonym_prefix=123", "detector.prob_threshold=1"])
    assert cfg.verify.long_side == 1600 and cfg.header.pseudonym_prefix == "123" and cfg.detector.prob_threshold == 1.0


@pytest.mark.parametrize("override, message", [
    ("detector.long_side=1000", "multiple of 32"),
    ("detector.text_max_reduction=0.5", "text_max_reduction"),
    ("verify.min_confidence=300", "verify.min_confidence"),
    ("detector.nonsense=1", "unknown setting"),
    ("nosection.x=1", "unknown configuration section"),
    ("input.non_image=delete", "input.non_image must be one of skip, header_only"),
    ("output.names=pseudo", "output.names must be one of same, pseudonymous"),
    ("detector.score_threshold=O.3", "detector.score_threshold must be a number, not 'O.3'"),
    ("detector.threads=1.5", "detector.threads must be a whole number"),
    ("retention.vocabulary=L", "retention.vocabulary must be a list"),
    ("output.resume=maybe", "output.resume must be true or false"),
    ("no_equals_sign", "section.key=value"),
])
def test_bad_settings_are_refused_with_a_reason(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_unreadable_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("header: [unclosed")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(bad)
