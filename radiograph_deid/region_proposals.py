"""Known regions proposed from a site's labelled images: where text lies in the same place on a device's images.

A new site's house style (its overlay of name, ID and date in one corner) is what the detectors miss most, and
fine-tuning the marker detector on 20 labelled images of it made redaction worse on both sites measured
(``benchmarks/bench_site.py``). A device that stamps its overlay in the same place on every image is better
served by a rule that fills that place whatever the detectors find (``known_regions``). This finds such places:
per device (the header values named, else the images' size), each text label is placed from the image corner
nearest it, and where text lies in enough of the images, one region spans every label that reaches there, with a
margin of half a line. Without labels, what a redact run filled stands for them (``records_as_labels``); fills
carry margins, at times a whole block's box or a false box, so such a region spans where fills lie in a share of
the images (``extent_share``), not every fill. The result is a rules file for a person to read before use: each
region notes in how many of the images text lay there, and how many laterality markers it would have filled.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

from .boxes import Box, joined
from .config import ConfigError
from .enums import BoxAction, BoxClass
from .fileio import write_bytes_atomic
from .known_regions import Region, from_rule, load_rules
from .labels import LabelledBox, LabelledImage
from .records import ImageRecord

KEYWORDS = ("Manufacturer", "ManufacturerModelName")  # what tells one device's images from another's
CELL = 4  # pixels per cell of the maps where recurrence is counted
FOUND = {BoxAction.REDACTED.value, BoxAction.KEPT_LATERALITY.value}  # a run's boxes that are findings
RECORDS_EXTENT = 0.25  # a region from a run's fills spans where they lie in a quarter of the images (bench_site)


@dataclass(frozen=True)
class ProposedRegion:
    region: Region
    images: int  # images of its rule with text in it
    laterality: int  # laterality labels of its rule's images it covers: markers the fill would take


@dataclass(frozen=True)
class ProposedRule:
    name: str
    match: tuple[tuple[str, str | int], ...]
    images: int
    regions: tuple[ProposedRegion, ...]

    @property
    def laterality(self) -> int:
        """Laterality labels its regions cover: markers the rule would fill."""
        return sum(r.laterality for r in self.regions)


@dataclass(frozen=True)
class _Placed:
    """A label box in its corner's frame: its distances in pixels from the corner's two edges (u across, v down
    or up)."""

    corner: tuple[bool, bool]  # (from the right edge, from the bottom edge)
    u0: int
    v0: int
    u1: int
    v1: int


def _placed(box: LabelledBox, width: int, height: int) -> _Placed:
    x0, y0, x1, y1 = box.xyxy
    right, bottom = x0 + x1 >= width, y0 + y1 >= height
    u0, u1 = (width - x1, width - x0) if right else (x0, x1)
    v0, v1 = (height - y1, height - y0) if bottom else (y0, y1)
    return _Placed((right, bottom), max(0, u0), max(0, v0), max(1, u1), max(1, v1))


def _region(p: _Placed) -> Region:
    """The placed extent as a rules-file region: from the right or bottom edge as negative values."""
    right, bottom = p.corner
    x0, x1 = (-p.u1, -p.u0 or None) if right else (p.u0, p.u1)
    y0, y1 = (-p.v1, -p.v0 or None) if bottom else (p.v0, p.v1)
    return Region(x0, y0, x1, y1)


def propose_rules(images: Sequence[LabelledImage], values: Mapping[str, Mapping[str, str]] | None = None,
                  keywords: Sequence[str] = KEYWORDS, min_share: float = 0.5, min_images: int = 3,
                  any_size: bool = False, extent_share: float | None = None) -> list[ProposedRule]:
    """One rule per device (``keywords``' values in ``values``, by file; images without them are one device)
    with ``min_images`` images or more, filling where text labels lie in ``min_share`` of its images or more.
    A region spans every label reaching there (labels are drawn tight), or with ``extent_share`` where boxes lie
    in that share of the images (at least 2): a run's fills are not (margins, a block's box, a false box).
    A rule matches each frame size all its images share; images without header values match on the sizes seen,
    or with ``any_size`` on any size (every image without those values: a folder of one site's exports)."""
    from pydicom.datadict import tag_for_keyword

    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], not {min_share}")
    unknown = [k for k in keywords if tag_for_keyword(k) is None]
    if unknown:
        raise ValueError(f"not DICOM keywords: {', '.join(unknown)} (spelled as in PS3.6, e.g. ManufacturerModelName)")
    groups: dict[tuple[tuple[str, str], ...], list[LabelledImage]] = {}
    for im in images:
        header = (values or {}).get(im.file, {})
        groups.setdefault(tuple((k, header[k]) for k in keywords if header.get(k)), []).append(im)
    rules = []
    for signature, members in sorted(groups.items()):
        if len(members) < min_images:
            continue
        need = max(min_images, math.ceil(min_share * len(members)))
        loose = None if extent_share is None else min(need, max(2, math.ceil(extent_share * len(members))))
        regions = _recurring(members, need, loose)
        if regions:
            rules.append(ProposedRule(f"site-{len(rules) + 1}", _match(signature, members, any_size), len(members),
                                      regions))
    return rules


def _recurring(images: Sequence[LabelledImage], need: int, loose: int | None) -> tuple[ProposedRegion, ...]:
    """The regions where text lies in ``need`` of the images or more, each spanning every label reaching there,
    or where boxes lie in ``loose`` of the images around there."""
    placed = [[_placed(b, im.width, im.height) for b in im.boxes if b.cls is BoxClass.OTHER_MARKER] for im in images]
    shape = (max(im.height for im in images) // CELL + 1, max(im.width for im in images) // CELL + 1)
    out = []
    for corner in ((False, False), (True, False), (False, True), (True, True)):
        count = np.zeros(shape, np.int32)
        for boxes in placed:
            seen = np.zeros(shape, bool)
            for p in (p for p in boxes if p.corner == corner):
                seen[_cells(p)] = True
            count += seen
        n, cells = cv2.connectedComponents((count >= need).astype(np.uint8), connectivity=8)
        here = [p for boxes in placed for p in boxes if p.corner == corner]
        spans = ([_span([p for p in here if (cells[_cells(p)] == k).any()]) for k in range(1, n)] if loose is None
                 else _loose_spans(count >= loose, cells, n, corner))
        for span in _merged(spans):
            region = _region(span)
            out.append(ProposedRegion(region, sum(any(_meets(p, span) for p in boxes) for boxes in placed),
                                      _laterality_covered(region, images)))
    return tuple(out)


def _cells(p: _Placed) -> tuple[slice, slice]:
    """The cells of the recurrence map (``CELL`` pixels square) that the placed box touches."""
    return slice(p.v0 // CELL, p.v1 // CELL + 1), slice(p.u0 // CELL, p.u1 // CELL + 1)


def _loose_spans(loose: np.ndarray, cores: np.ndarray, n: int, corner: tuple[bool, bool]) -> list[_Placed]:
    """For each of the ``n - 1`` cores, the extent of the ``loose`` cells joined to it (cells to pixels)."""
    _, wide = cv2.connectedComponents(loose.astype(np.uint8), connectivity=8)
    spans = []
    for k in range(1, n):
        ys, xs = np.nonzero(np.isin(wide, np.unique(wide[cores == k])))
        spans.append(_Placed(corner, int(xs.min()) * CELL, int(ys.min()) * CELL, (int(xs.max()) + 1) * CELL,
                             (int(ys.max()) + 1) * CELL))
    return spans


def _span(boxes: Sequence[_Placed]) -> _Placed:
    """The extent of the boxes (one corner's), grown by half their median height: a margin for a longer name."""
    margin = max(2, int(np.median([p.v1 - p.v0 for p in boxes])) // 2)
    return _Placed(boxes[0].corner, max(0, min(p.u0 for p in boxes) - margin),
                   max(0, min(p.v0 for p in boxes) - margin), max(p.u1 for p in boxes) + margin,
                   max(p.v1 for p in boxes) + margin)


def _meets(a: _Placed, b: _Placed) -> bool:
    return a.corner == b.corner and a.u0 < b.u1 and b.u0 < a.u1 and a.v0 < b.v1 and b.v0 < a.v1


def _merged(spans: Sequence[_Placed]) -> list[_Placed]:
    """The spans (of one corner) with those that overlap joined into one, until none does (``boxes.joined``)."""
    if not spans:
        return []
    joined_boxes = joined([Box(p.u0, p.v0, p.u1, p.v1) for p in spans])
    return [_Placed(spans[0].corner, b.x0, b.y0, b.x1, b.y1) for b in joined_boxes]


def _laterality_covered(region: Region, images: Sequence[LabelledImage]) -> int:
    """Laterality labels the region touches on their own images: a marker kept there would be filled."""
    covered = 0
    for im in images:
        box = region.on(im.height, im.width, "")
        covered += sum(box is not None and b.cls is BoxClass.LATERALITY and b.xyxy[0] < box.x1 and box.x0 < b.xyxy[2]
                       and b.xyxy[1] < box.y1 and box.y0 < b.xyxy[3] for b in im.boxes)
    return covered


def _match(signature: tuple[tuple[str, str], ...], images: Sequence[LabelledImage], any_size: bool
           ) -> tuple[tuple[str, str | int], ...]:
    """The header values exactly (as regular expressions), and each frame size all the images share; without
    header values, the sizes seen, or any (a rule must match on something)."""
    match: list[tuple[str, str | int]] = [(k, re.escape(v).replace("\\ ", " ")) for k, v in signature]  # readable
    for keyword, sizes in (("Rows", {im.height for im in images}), ("Columns", {im.width for im in images})):
        if len(sizes) == 1 and not (any_size and not signature):
            match.append((keyword, sizes.pop()))
        elif not signature:
            match.append((keyword, r"\d+" if any_size else "|".join(map(str, sorted(sizes)))))
    return tuple(match)


def run_records(folder: Path) -> list[ImageRecord]:
    """The image records of a redact run: ``folder`` is its records folder (OUTPUT/.deid by default), or the
    OUTPUT holding it."""
    found = next((f / "records" for f in (folder, folder / ".deid") if (f / "records").is_dir()), None)
    if found is None:
        raise FileNotFoundError(f"no records/ under {folder} or {folder / '.deid'}: give a redact run's records "
                                "folder (OUTPUT/.deid by default, OUTPUT_deid with output.names=pseudonymous)")
    return [ImageRecord.from_json(path.read_text(encoding="utf-8")) for path in sorted(found.rglob("*.json"))]


def records_as_labels(records: Iterable[ImageRecord]) -> list[LabelledImage]:
    """A run's records (``records.ImageRecord``) as labelled images: its fills as text, its kept markers as
    laterality; a known region's fill is no finding (it would only find itself again)."""
    labelled = []
    for rec in records:
        if rec.rows <= 0 or rec.columns <= 0:
            continue  # not decoded: nothing was looked for
        boxes = tuple(LabelledBox(tuple(b["box"]), BoxClass.LATERALITY if b["action"] == BoxAction.KEPT_LATERALITY.value
                                  else BoxClass.OTHER_MARKER)
                      for b in rec.boxes if b["action"] in FOUND and not from_rule(str(b.get("source", ""))))
        labelled.append(LabelledImage(rec.input, rec.columns, rec.rows, boxes))
    return labelled


def write_rules(rules: Sequence[ProposedRule], dest: Path, source: str) -> None:
    """The rules written to ``dest`` (``rules_yaml``), never over an existing file (FileExistsError: it may hold a
    person's edits), and loaded back as ``detector.known_regions`` loads them (a ConfigError removes the file)."""
    if dest.exists():
        raise FileExistsError(f"{dest} exists: it is not replaced (a rules file may hold hand edits); choose another "
                              "path or remove it")
    write_bytes_atomic(dest, rules_yaml(rules, source).encode())
    try:
        load_rules(dest)
    except ConfigError:
        dest.unlink()
        raise


def rules_yaml(rules: Sequence[ProposedRule], source: str) -> str:
    """The rules as a ``detector.known_regions`` file, each region with what it rests on in a comment."""
    lines = [f"# Regions proposed by radiograph-deid regions from {source}.",
             "# Read before use: each region is filled in every image its rule matches, whatever the detectors find,",
             "# and a laterality marker inside it is filled too. Edit or delete what you do not want."]
    for rule in rules:
        lines += [f"- name: {rule.name}                  # {rule.images} images", "  match:"]
        lines += [f"    {k}: {json.dumps(v)}" for k, v in rule.match]
        lines.append("  fill:")
        for p in rule.regions:
            r = p.region
            coords = ", ".join("null" if v is None else str(v) for v in (r.x0, r.y0, r.x1, r.y1))
            lines.append(f"    - [{coords}]    # text in {p.images} of {rule.images} images; "
                         f"{p.laterality} laterality marker(s) of these images inside")
    return "\n".join(lines) + "\n"
