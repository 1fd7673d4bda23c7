"""Typed run configuration, validated on construction.

The dataclass defaults are the safe defaults; ``configs/redact.yaml`` spells them out for users (a test keeps
the two equal). A YAML file and ``--set section.key=value`` overrides layer on top.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .enums import NonImagePolicy, OutputNames


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class InputConfig:
    image_extensions: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".jp2")
    max_pixels_per_frame: int = 80_000_000  # larger frames are quarantined rather than exhausting memory
    max_frames: int = 2000
    non_image: NonImagePolicy = NonImagePolicy.SKIP
    # a file still in work after this long (a decoder caught in a loop) is quarantined and the run goes on; 0: no
    # limit. Held where files are done in processes of their own: redact, the bundle, the app's /infer/redact
    max_seconds_per_file: float = 900.0

    def __post_init__(self) -> None:
        _check(self.max_pixels_per_frame > 0, "input.max_pixels_per_frame must be > 0")
        _check(self.max_frames > 0, "input.max_frames must be > 0")
        _check(self.max_seconds_per_file >= 0, "input.max_seconds_per_file must be >= 0 (0: no limit)")
        object.__setattr__(self, "non_image", NonImagePolicy(self.non_image))
        object.__setattr__(self, "image_extensions", tuple(e.lower() for e in self.image_extensions))


@dataclass(frozen=True)
class HeaderConfig:
    retain_longitudinal_modified_dates: bool = False  # PS3.15 option: shift dates per patient instead of removing
    clean_descriptors: bool = False  # PS3.15 option: keep descriptions after removing identifying words
    # PS3.15 option: keep age, sex, size, weight, smoking and pregnancy status (valid values only), clean allergies
    retain_patient_characteristics: bool = False
    age_top_code_years: int = 90  # ... and write any older age as this (HIPAA Safe Harbor: "90 or older")
    key_file: str = "~/.config/radiograph-deid/secret.key"  # HMAC key; created 0600 if absent, never written out
    pseudonym_prefix: str = "ANON"
    max_date_shift_days: int = 3650

    def __post_init__(self) -> None:
        _check(self.max_date_shift_days >= 1, "header.max_date_shift_days must be >= 1")
        _check(1 <= self.age_top_code_years <= 999, "header.age_top_code_years must be 1-999 (an age string's range)")
        _check(self.pseudonym_prefix.isalnum(), "header.pseudonym_prefix must be letters/digits only")


@dataclass(frozen=True)
class DetectorConfig:
    # registry name(s), see radiograph_deid.detector.DETECTORS; "a+b" redacts what either finds. The trained
    # marker detector finds markers and lone glyphs; the OCR text detector adds text it misses; "ruler" finds rulers
    # by their ticks (their lone number labels escape both); "corner-icon" a device's pictogram stamped in a corner
    # (too small and plain for either). Measured in the README.
    name: str = "marker-yolo+rapidocr-text+ruler+corner-icon"
    long_side: int = 960  # rapidocr-text sees the image at this long side (marker-yolo: its model's input size) ...
    text_max_reduction: float = 2.5  # ... or, larger, at its own long side / this (small text on a photo); 0: off
    prob_threshold: float = 0.3
    box_threshold: float = 0.5
    min_recognition_confidence: float = 0.6  # a proposal is text only if the recognizer reads it this well
    short_text_confidence: float = 0.8  # ... this well if it reads 1-2 characters or stands (ribs "10", spine "SSIG")
    max_text_height_fraction: float = 0.08  # taller proposals are anatomy, not burned-in text
    vertical_text: bool = True  # rapidocr-text: also propose on the view turned a quarter (text up a plate edge)
    margin_fraction: float = 0.25  # fill margin around a box, as a fraction of its short side
    complete_lines: bool = True  # fill a redacted box to the ends of its text line and of the strokes it cuts (text_lines)
    stacked_lines: bool = True  # also fill the lines stacked on a redacted line that read as text (an overlay block)
    spare_rings: bool = True  # a marker box holding a lone ring (an electrode, a nipple marker) or spot (a speck) is not filled
    threads: int = 2
    weights: str = ""  # marker-yolo: an ONNX file; empty = the weights shipped in radiograph_deid/models
    # marker-yolo, set for the shipped weights: lower finds more (a false box costs a black corner, a miss PHI)
    score_threshold: float = 0.45
    tile_long_side: int = 2048  # marker-yolo: also search this larger view in model-sized tiles (small text); 0: off
    confirm_threshold: float = 0.1  # marker-yolo: boxes scored from this up to score_threshold are redacted if ...
    confirm_confidence: float = 0.8  # ... the text recognizer reads 2+ characters in them this well
    # marker-yolo: on these modalities a box is filled only when read as above, up to doubt_threshold: trained on
    # radiographs, it boxes ultrasound anatomy (a beating heart, flow) as markers at 0.45-0.65
    doubt_modalities: tuple[str, ...] = ("US",)
    doubt_threshold: float = 0.99
    # a YAML file of regions a site knows its devices burn text into, filled whatever is detected (known_regions)
    known_regions: str = ""

    def __post_init__(self) -> None:
        _check(0.0 < self.score_threshold < 1.0, "detector.score_threshold must be in (0, 1)")
        _check(0.0 < self.confirm_threshold < 1.0, "detector.confirm_threshold must be in (0, 1)")
        _check(0.0 < self.doubt_threshold < 1.0, "detector.doubt_threshold must be in (0, 1)")
        object.__setattr__(self, "doubt_modalities", tuple(str(m).strip().upper() for m in self.doubt_modalities))
        _check(self.long_side >= 320 and self.long_side % 32 == 0, "detector.long_side must be >= 320, multiple of 32")
        for k in ("prob_threshold", "box_threshold", "min_recognition_confidence", "short_text_confidence",
                  "max_text_height_fraction", "confirm_confidence"):
            _check(0.0 < getattr(self, k) <= 1.0, f"detector.{k} must be in (0, 1]")
        _check(self.margin_fraction >= 0.0, "detector.margin_fraction must be >= 0")
        _check(self.text_max_reduction == 0.0 or self.text_max_reduction >= 1.0,
               "detector.text_max_reduction must be 0 (off) or >= 1")
        if self.known_regions:  # a mistake in the rules stops the run before any file is read
            from .known_regions import load_rules

            load_rules(self.known_regions)


@dataclass(frozen=True)
class RetentionConfig:
    enabled: bool = True
    # laterality words kept when isolated: L/R, English LT/RT/LEFT/RIGHT, French G/D, Spanish I/D, Italian SX/DX
    vocabulary: tuple[str, ...] = ("L", "R", "LT", "RT", "LEFT", "RIGHT", "G", "D", "I", "SX", "DX", "SIN", "DEX")
    min_confidence: float = 0.8  # glyph classifier probability to keep a letter (from half: a second reader decides)
    max_aspect: float = 3.0  # boxes longer than this many times their width are lines of text: never kept
    # the paper's Tesseract reads glyphs the classifier is unsure of, and confirms a letter seen as strokes apart
    # from its ground or beside a shape no reader reads (``LateralityRetainer._last_look``); off, neither is done
    tesseract_second_opinion: bool = True
    glyph_weights: str = ""  # ONNX glyph classifier; empty = the one shipped in radiograph_deid/models
    glyph_candidates: int = 3  # glyphs read per box, largest first (a ring's arc can outweigh its letter)
    # a kept glyph's longer side, at least this share of the image's shorter side (a lead marker is 1-2 cm on a
    # 35-43 cm plate; a viewer's icon or a dot-matrix glyph is smaller); 0 keeps glyphs of any size
    min_marker_share: float = 0.01

    def __post_init__(self) -> None:
        _check(0.0 < self.min_confidence <= 1.0, "retention.min_confidence must be in (0, 1]")
        _check(0.0 <= self.min_marker_share < 0.5, "retention.min_marker_share must be in [0, 0.5)")
        _check(1 <= self.glyph_candidates <= 5, "retention.glyph_candidates must be 1..5")
        _check(self.max_aspect >= 1.0, "retention.max_aspect must be >= 1")
        object.__setattr__(self, "vocabulary", tuple(str(v).upper() for v in self.vocabulary))


@dataclass(frozen=True)
class VerifyConfig:
    enabled: bool = True  # the fail-closed safety net; switching it off is recorded in every record
    engine: str = "tesseract"
    long_side: int = 1600
    min_confidence: float = 70.0  # Tesseract word confidence (0-100); real burned-in text reads at 80-96
    min_height: int = 8  # words shorter than this (pixels, at the verifier's scale) are texture, not text
    min_chars: int = 2  # alphanumeric characters in a word for it to count as surviving text
    max_frames: int = 8  # frames checked per multi-frame object (evenly spaced, plus first and last)
    timeout_s: float = 60.0  # Tesseract's time per view; longer (a page of white specks took 48 s) -> quarantine

    def __post_init__(self) -> None:
        _check(0 <= self.min_confidence <= 100, "verify.min_confidence must be in [0, 100]")
        _check(self.timeout_s > 0, "verify.timeout_s must be > 0")
        _check(self.min_chars >= 1, "verify.min_chars must be >= 1")
        _check(self.min_height >= 1, "verify.min_height must be >= 1")
        _check(self.long_side >= 320, "verify.long_side must be >= 320")


@dataclass(frozen=True)
class OutputConfig:
    records_dir: str = ".deid"  # per-image records and the run summary: under OUTPUT (beside it for pseudonymous names)
    quarantine: str = ""  # empty: a sibling folder OUTPUT_quarantine (never inside OUTPUT)
    resume: bool = True  # skip inputs whose record says they are done and unchanged
    names: OutputNames = OutputNames.SAME  # same: the input's relative path; pseudonymous: no input name in OUTPUT
    prune: bool = False  # remove what earlier runs made of inputs no longer under INPUT (withdrawn consent)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", OutputNames(self.names))


@dataclass(frozen=True)
class Config:
    input: InputConfig = field(default_factory=InputConfig)
    header: HeaderConfig = field(default_factory=HeaderConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        _check(not ("rapidocr-text" in self.detector.name.split("+") and self.verify.engine == "rapidocr"),
               "verify.engine=rapidocr uses the same models as detector.name=rapidocr-text: the safety net must be "
               "independent of the detector; use verify.engine=tesseract with that detector")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain YAML/JSON-ready values (recorded in every run summary)."""

        def plain(v: Any) -> Any:
            return list(v) if isinstance(v, tuple) else v.value if isinstance(v, Enum) else v

        return {
            s.name: {k: plain(v) for k, v in dataclasses.asdict(getattr(self, s.name)).items()}
            for s in dataclasses.fields(self)
        }


def _section(cls: type, name: str, values: Mapping[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    _check(not unknown, f"unknown setting(s) in section '{name}': {', '.join(sorted(unknown))}")
    defaults = cls()
    kwargs = {k: _typed(f"{name}.{k}", getattr(defaults, k), v) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"section '{name}': {exc}") from exc


def _typed(key: str, default: Any, value: Any) -> Any:
    """``value`` as the type of the setting's default, or a ConfigError naming the setting and what it takes
    (a typo such as ``score_threshold=O.3`` had failed deep inside with "'<' not supported...")."""
    if isinstance(default, Enum):
        choices = [m.value for m in type(default)]
        _check(value in choices, f"{key} must be one of {', '.join(choices)}, not {value!r}")
        return type(default)(value)
    if isinstance(default, bool):
        _check(isinstance(value, bool), f"{key} must be true or false, not {value!r}")
    elif isinstance(default, int):
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        _check(whole and not isinstance(value, bool), f"{key} must be a whole number, not {value!r}")
        return int(value)
    elif isinstance(default, float):
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), f"{key} must be a number, not {value!r}")
        return float(value)
    elif isinstance(default, tuple):
        _check(isinstance(value, (list, tuple)), f"{key} must be a list, e.g. [a, b], not {value!r}")
        return tuple(value)
    elif isinstance(default, str):
        _check(isinstance(value, (str, int, float)) and not isinstance(value, bool), f"{key} must be text, not {value!r}")
        return str(value)
    return value


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path``, then ``section.key=value`` overrides."""
    data: dict[str, dict[str, Any]] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
        _check(isinstance(loaded, dict), f"configuration {path} must be a mapping of sections")
        data = {k: dict(v or {}) for k, v in loaded.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        _check(bool(sep and dot and section and name), f"override '{item}' must look like section.key=value")
        data.setdefault(section, {})[name] = _parse_value(raw)
    sections = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
    unknown = set(data) - set(sections)
    _check(not unknown, f"unknown configuration section(s): {', '.join(sorted(unknown))}")
    return Config(**{name: _section(type(factory()), name, data.get(name, {})) for name, factory in sections.items()})
