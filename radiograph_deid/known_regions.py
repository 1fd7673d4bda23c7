"""Known burned-in regions: areas a site knows a device burns text into, filled in every image it makes.

Detection finds text it can see; a site often knows more. An ultrasound machine writes the patient's name in the
same banner on every frame, a CR reader stamps its plate ID in the same corner, an old film digitiser prints the
institution along one edge, sometimes in grey too faint for any detector. As RSNA CTP's DicomPixelAnonymizer
does with its signatures, a rules file names such regions by the header values that identify the device; they
are filled whatever the detectors find, beside what they find. Unlike CTP, every matching rule applies, not only
the first: for de-identification the union is the safe reading of overlapping rules.

The rules file (``detector.known_regions``) is a YAML list::

    - name: ward-us-banner            # in each image record, never a header value
      match:                          # DICOM keywords; every one must match
        Modality: US                  # a string: a regular expression for the whole value, case-insensitive
        Manufacturer: "ACME( Medical)?"
        Rows: 600                     # a number: equal. Rows and Columns are the decoded frame's size, so a
        Columns: 800                  # rule that matches on them alone also applies to PNG/JPEG/TIFF inputs
      fill:                           # [x0, y0, x1, y1] in the frame's pixels: a negative value counts back from
        - [0, 0, null, 60]            # the right or bottom edge, null is that edge; clipped to the frame
        - [-200, -40, null, null]

The values matched are read before the header is de-identified and never written anywhere.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from .boxes import Box
from .config import ConfigError

SOURCE = "known-region"  # Box.source of a known region's fill (followed by ":" and the rule's name)
FRAME_KEYWORDS = ("Rows", "Columns")  # taken from the decoded frame, so images without a header match them too

def from_rule(source: str) -> bool:
    """Whether a box's ``source`` is a known region's (a rule's rectangle, filled whatever is detected), not a
    detector's: the review shows such a box, and a label sent back teaches the detector none."""
    return source.startswith(f"{SOURCE}:")


Bound = int | None  # a coordinate of a region: negative counts back from the far edge, None is the far edge


@dataclass(frozen=True)
class Region:
    """One rectangle of a rule, in frame pixels as written in the rules file (``Bound``)."""

    x0: int
    y0: int
    x1: Bound
    y1: Bound

    def __post_init__(self) -> None:
        for lo, hi, axis in ((self.x0, self.x1, "x"), (self.y0, self.y1, "y")):
            if hi is not None and (lo < 0) == (hi < 0) and hi <= lo:
                raise ValueError(f"{axis}1 ({hi}) must lie beyond {axis}0 ({lo})")

    def on(self, rows: int, columns: int, name: str) -> Box | None:
        """This region on a frame of ``rows`` x ``columns``, clipped to it (None where nothing of it is left)."""
        def at(v: Bound, size: int) -> int:
            return size if v is None else min(size, max(0, v + size if v < 0 else v))

        x0, y0, x1, y1 = at(self.x0, columns), at(self.y0, rows), at(self.x1, columns), at(self.y1, rows)
        if x1 <= x0 or y1 <= y0:
            return None
        return Box(x0, y0, x1, y1, 1.0, source=f"{SOURCE}:{name}")


@dataclass(frozen=True)
class RegionRule:
    """A device signature (keyword -> regular expression or number) and the regions filled where it matches."""

    name: str
    match: tuple[tuple[str, str | float], ...]
    regions: tuple[Region, ...]

    def __post_init__(self) -> None:
        from pydicom.datadict import tag_for_keyword

        if not self.match:
            raise ValueError("'match' is empty: a rule matching every image is a mistake more often than not; "
                             "match on Rows and Columns (or Modality) to fill a region in every image of a size")
        if not self.regions:
            raise ValueError("'fill' lists no region")
        for keyword, want in self.match:
            if tag_for_keyword(keyword) is None:
                raise ValueError(f"'{keyword}' is not a DICOM keyword (spelled as in PS3.6, e.g. "
                                 "ManufacturerModelName)")
            if isinstance(want, str):
                try:
                    re.compile(want)
                except re.error as exc:
                    raise ValueError(f"the pattern for {keyword} is not a regular expression: {exc}") from None

    def applies(self, values: Mapping[str, str]) -> bool:
        """Whether every keyword of the signature has a value that matches (a missing value does not)."""
        return all(keyword in values and _matches(values[keyword], want) for keyword, want in self.match)


def _matches(value: str, want: str | float) -> bool:
    if isinstance(want, str):
        return re.fullmatch(want, value.strip(), re.IGNORECASE) is not None
    try:
        return float(value) == float(want)
    except ValueError:
        return False


class KnownRegions:
    """The rules of one rules file: the header values they need, and the boxes to fill for an image."""

    def __init__(self, rules: Sequence[RegionRule]) -> None:
        self.rules = tuple(rules)
        self.keywords = sorted({k for r in self.rules for k, _ in r.match} - set(FRAME_KEYWORDS))

    @classmethod
    def configured(cls, path: str) -> KnownRegions:
        """The rules of ``detector.known_regions`` (none when it is empty)."""
        return load_rules(path) if path else cls(())

    def values(self, ds: Any | None) -> dict[str, str]:
        """The header values the rules match on (``ds``: a pydicom Dataset, or None for an image file); read
        before the header stage removes or replaces them."""
        return {} if ds is None else header_values(ds, self.keywords)

    def boxes(self, values: Mapping[str, str], rows: int, columns: int) -> list[Box]:
        """The regions of every rule that matches these values on a frame of this size."""
        frame = {**values, "Rows": str(rows), "Columns": str(columns)}
        return [box for rule in self.rules if rule.applies(frame)
                for region in rule.regions if (box := region.on(rows, columns, rule.name)) is not None]


def header_values(ds: Any, keywords: Iterable[str]) -> dict[str, str]:
    """The values of ``keywords`` that ``ds`` (a pydicom Dataset) holds, as strings (multiple values joined by a
    backslash, as stored); a malformed element has no value, so no rule that needs it applies."""
    out = {}
    for keyword in keywords:
        try:
            value = ds.get(keyword, None)
        except Exception:
            continue
        if value is not None and value != "":
            out[keyword] = "\\".join(str(v) for v in value) if _multi(value) else str(value)
    return out


def file_values(path: Path, keywords: Iterable[str]) -> dict[str, str]:
    """The values of ``keywords`` in the header of the file at ``path``; none for an image file, or for a DICOM
    file whose header cannot be read (its pixels are not read)."""
    import pydicom

    from .fileio import is_dicom

    keywords = list(keywords)
    if not keywords or not is_dicom(path):
        return {}
    try:
        return header_values(pydicom.dcmread(str(path), stop_before_pixels=True, force=True), keywords)
    except Exception:  # unreadable: matched on no header value, as redact's reader would quarantine it
        return {}


def _multi(value: Any) -> bool:
    from pydicom.multival import MultiValue

    return isinstance(value, (list, tuple, MultiValue))


def load_rules(path: str | Path) -> KnownRegions:
    """The rules file at ``path``, validated whole: a ConfigError names the rule and what is wrong with it."""
    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"detector.known_regions: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"detector.known_regions: {path} is not valid YAML: {exc}") from None
    if not isinstance(data, list):
        raise ConfigError(f"detector.known_regions: {path} must be a YAML list of rules (see "
                          "configs/known_regions.example.yaml)")
    return KnownRegions([_rule(item, i, path) for i, item in enumerate(data, start=1)])


def _rule(item: Any, index: int, path: Path) -> RegionRule:
    named = item.get("name") if isinstance(item, dict) else None
    name = str(named) if named else f"rule-{index}"
    where = f"detector.known_regions: {path}, rule {index}" + (f" ({name})" if named else "")
    try:
        if not isinstance(item, dict) or not isinstance(item.get("match"), dict):
            raise ValueError("a rule is a mapping with 'match' (a mapping) and 'fill' (a list of [x0, y0, x1, y1])")
        unknown = set(item) - {"name", "match", "fill"}
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (a rule has name, match, fill)")
        match = tuple((str(k), _wanted(v, str(k))) for k, v in item["match"].items())
        return RegionRule(name, match, tuple(_region(r) for r in _listed(item.get("fill"))))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _wanted(value: Any, keyword: str) -> str | float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"the value for {keyword} must be a string (a regular expression) or a number")
    return value if isinstance(value, str) else float(value)


def _listed(fill: Any) -> Iterable[Any]:
    if not isinstance(fill, list):
        raise ValueError("'fill' must be a list of regions [x0, y0, x1, y1]")
    return fill


def _region(raw: Any) -> Region:
    if not isinstance(raw, list) or len(raw) != 4:
        raise ValueError(f"a region must be [x0, y0, x1, y1], not {raw!r}")
    x0, y0, x1, y1 = raw
    for v, can_be_edge in ((x0, False), (y0, False), (x1, True), (y1, True)):
        if not (isinstance(v, int) and not isinstance(v, bool)) and not (can_be_edge and v is None):
            raise ValueError(f"region {raw!r}: coordinates are whole pixels (x1 and y1 may be null: the far edge)")
    return Region(x0, y0, x1, y1)
