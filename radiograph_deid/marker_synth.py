"""Training data for the marker detector: realistic markers burned into real radiograph backgrounds.

Each synthetic image is made at a full acquisition resolution (1500-3200 px long side), with markers sized as
they are on real plates, and then reduced exactly as the detector's own preprocessing reduces an image
(``detector_view``), so training and inference see text at the same pixel scale. Everything is in the display
domain (bright = dense); bit depth and MONOCHROME1 are undone by the windowing before the detector runs.

Vocabulary: laterality markers (L/R lead letters bare, on a tile, boxed, circled, dark on bright, rotated,
mirrored; other sites' D/I, G/D, DX/SX, LT/RT, LEFT/RIGHT) and non-laterality text (names, IDs, accession
numbers, dates and times in many formats, institutions, departments, technician initials, position and exposure
text, ruler labels, a laterality letter with initials beside it), in the fonts matplotlib ships (DejaVu, STIX,
Computer Modern) and OpenCV's Hershey fonts, plain or dot-matrix. All names are invented.
"""
from __future__ import annotations

import functools
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .enums import BoxClass

LATERALITY_WORDS = ("L", "R", "L", "R", "L", "R", "D", "I", "G", "LT", "RT", "DX", "SX", "LEFT", "RIGHT", "SIN", "DEX")
FIRST = ("ANNA", "JOHN", "MARIA", "LI", "WEI", "OLGA", "JOSÉ", "FATIMA", "PIERRE", "SVEN", "YUKI", "AHMED", "ELENA",
         "KAREN", "PETER", "ZOE", "IVAN", "NGOZI", "LUCA", "HANNA", "ÅSA", "JÜRGEN", "MEHMET", "PRIYA")
LAST = ("DOE", "SMITH", "MÜLLER", "GARCIA", "NGUYEN", "KOWALSKI", "ROSSI", "DUBOIS", "OKAFOR", "SCHMIDT", "TANAKA",
        "JOHANSSON", "O'BRIEN", "VAN DER BERG", "PETROV", "SILVA", "HANSEN", "ÖZTÜRK", "LEFÈVRE", "NOWAK")
PLACES = ("SAINT EXAMPLE HOSPITAL", "UNIVERSITÄTSKLINIKUM", "CHU DE NULLEPART", "OSPEDALE CIVILE", "GENERAL HOSP.",
          "RADIOLOGY DEPT", "Klinik für Radiologie", "Notaufnahme", "Intensivstation 3", "ICU BED 12", "ER-2",
          "Hospital Universitario", "Radiologie", "MEDICAL CENTER", "X-RAY ROOM 4", "Auf Station", "WARD 7B")
POSITION = ("PORTABLE", "SUPINE", "ERECT", "UPRIGHT", "AP", "PA", "LAT", "AP SUPINE", "SEMI-ERECT", "Bettaufnahme",
            "liegend", "stehend", "sitzend", "DECUBITUS", "INSP", "EXP", "Thorax p.a.", "Thorax a.p.", "BEDSIDE",
            "decubito", "debout", "couché", "ORTHO", "CHEST", "TRAUMA", "POST", "PRE", "1", "2", "A", "P", "+", "*")
FONT_DIR_GLOBS = ("DejaVu*.ttf", "STIXGeneral*.ttf", "cm[rbst]*10.ttf")
SYSTEM_FONT_DIR = Path("/usr/share/fonts/truetype")  # Debian's fonts-* packages
HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
           cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)


@functools.lru_cache(maxsize=1)
def font_files() -> tuple[Path, ...]:
    """TrueType fonts shipped with matplotlib (a training dependency) and the system's DejaVu if present."""
    try:
        import PIL.ImageFont  # noqa: F401  (renders TrueType)
    except ImportError:
        return ()
    roots = [SYSTEM_FONT_DIR]
    try:
        import matplotlib

        roots.insert(0, Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf")
    except ImportError:  # without the train extra: the system's fonts, else OpenCV's Hershey fonts only
        pass
    found = {p.name: p for root in roots if root.exists() for g in FONT_DIR_GLOBS for p in root.rglob(g)}
    return tuple(p for p in sorted(found.values()) if _draws_latin(p))


def _draws_latin(font: Path) -> bool:
    """Whether the font has glyphs of its own for Latin capitals: matplotlib's DejaVu "Display" fonts hold a few
    symbols only and draw every letter as the same bar (a "missing glyph"), which a generator would label as an
    L, an R or a name."""
    shapes = [_tight(_render_ttf(c, 40, font)) for c in "LRE"]
    return len({(a.shape, a.round(1).tobytes()) for a in shapes}) == len(shapes)


def font_warning() -> str | None:
    """Why a synthetic set drawn here differs from one drawn with the train extra installed, or None: the set is
    drawn in whichever fonts are found, so without matplotlib's the same seed gives other images and labels (a
    fresh clone with the base install scored 73.3 % where the README records 75.0 %)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return (f"matplotlib (the train extra) is not installed: synthetic markers are drawn in the "
                f"{len(font_files())} system fonts only, so this set is not the one recorded in the README "
                f"(install it with: bash scripts/setup.sh --train)")
    return None


@dataclass(frozen=True)
class Marker:
    """A rendered marker: ``alpha`` in [0, 1] is the ink (glyphs plus any tile/frame), ``cls`` its class."""

    alpha: np.ndarray
    cls: BoxClass
    text: str


def _render_ttf(text: str, height: int, font: Path) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    size = max(6, int(height * 1.4))
    f = ImageFont.truetype(str(font), size)
    x0, y0, x1, y1 = f.getbbox(text)
    img = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4), 0)
    ImageDraw.Draw(img).text((2 - x0, 2 - y0), text, fill=255, font=f)
    return np.asarray(img, np.float32) / 255.0


def _render_hershey(text: str, height: int, face: int, thickness: int) -> np.ndarray:
    scale = max(0.2, height / 22.0)
    (w, h), base = cv2.getTextSize(text, face, scale, thickness)
    img = np.zeros((h + base + 2 * thickness + 4, w + 2 * thickness + 4), np.float32)
    cv2.putText(img, text, (thickness + 2, h + thickness + 2), face, scale, 1.0, thickness, cv2.LINE_AA)
    return img


def _tight(alpha: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(alpha > 0.05)
    if len(ys) == 0:
        return alpha
    return alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def render_text(text: str, height: int, rng: np.random.Generator, bold: bool = False) -> np.ndarray:
    """``text`` as an alpha mask whose capital letters are about ``height`` pixels tall, in a random font."""
    fonts = font_files()
    if not fonts or (rng.random() < 0.3 and all(c in string.printable for c in text)):
        text = text.encode("ascii", "replace").decode()  # Hershey fonts are ASCII only
        face = HERSHEY[rng.integers(len(HERSHEY))]
        thick = max(1, int(round(height / (6 if bold else 12))))
        alpha = _render_hershey(text, height, face, thick)
    else:
        alpha = _render_ttf(text, height, fonts[rng.integers(len(fonts))])
    alpha = _tight(alpha)
    if bold and rng.random() < 0.5:
        k = max(1, height // 12)
        alpha = cv2.dilate(alpha, np.ones((k, k), np.uint8))
    return alpha


def dot_matrix(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The text re-drawn as dots on a grid, like a CR plate's imprinter."""
    pitch = max(2, int(alpha.shape[0] / rng.uniform(6, 9)))
    out = np.zeros_like(alpha)
    r = max(1, int(pitch * rng.uniform(0.3, 0.5)))
    for y in range(pitch // 2, alpha.shape[0], pitch):
        for x in range(pitch // 2, alpha.shape[1], pitch):
            if alpha[y, x] > 0.4:
                cv2.circle(out, (x, y), r, 1.0, -1, cv2.LINE_AA)
    return out


def _framed(glyph: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    """A lead marker: the glyph on a tile, in a box or circle, or bare. On a tile the glyph is cut out (inverse)."""
    if style == "bare":
        return glyph
    h, w = glyph.shape
    pad = max(2, int(max(h, w) * rng.uniform(0.15, 0.45)))
    if style == "circle":
        side = int(np.hypot(h, w)) + 2 * pad
        canvas = np.zeros((side, side), np.float32)
        y, x = (side - h) // 2, (side - w) // 2
        canvas[y : y + h, x : x + w] = glyph
        cv2.circle(canvas, (side // 2, side // 2), side // 2 - 1, 1.0, max(1, side // 18), cv2.LINE_AA)
        return canvas
    canvas = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    canvas[pad : pad + h, pad : pad + w] = glyph
    if style == "box":
        cv2.rectangle(canvas, (0, 0), (canvas.shape[1] - 1, canvas.shape[0] - 1), 1.0, max(1, canvas.shape[0] // 16))
        return canvas
    tile = np.full_like(canvas, rng.uniform(0.45, 0.8))  # "tile": the lead block, letter brighter or darker
    return np.clip(tile + canvas * (1.0 - tile) if rng.random() < 0.7 else tile * (1.0 - canvas), 0, 1)


def _rotate(alpha: np.ndarray, rng: np.random.Generator, small_only: bool = False) -> np.ndarray:
    if not small_only:
        alpha = np.rot90(alpha, int(rng.integers(4))) if rng.random() < 0.35 else alpha
        alpha = np.fliplr(alpha) if rng.random() < 0.2 else alpha
    angle = rng.normal(0, 6) if rng.random() < 0.5 else 0.0
    if abs(angle) > 0.5:
        h, w = alpha.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        nw, nh = int(h * abs(m[0, 1]) + w * abs(m[0, 0])) + 2, int(h * abs(m[0, 0]) + w * abs(m[0, 1])) + 2
        m[:, 2] += (nw - w) / 2, (nh - h) / 2
        alpha = cv2.warpAffine(np.ascontiguousarray(alpha), m, (nw, nh), flags=cv2.INTER_LINEAR)
    return np.ascontiguousarray(_tight(alpha))


def _date(rng: np.random.Generator) -> str:
    y, m, d = int(rng.integers(1990, 2027)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    hh, mm, ss = int(rng.integers(0, 24)), int(rng.integers(0, 60)), int(rng.integers(0, 60))
    months = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    forms = (f"{d:02d}/{m:02d}/{y}", f"{m:02d}/{d:02d}/{y % 100:02d}", f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}",
             f"{d}-{months[m - 1]}-{y}", f"{y}{m:02d}{d:02d}", f"{hh:02d}:{mm:02d}", f"{hh:02d}:{mm:02d}:{ss:02d}",
             f"{d:02d}.{m:02d}.{y % 100:02d} {hh:02d}:{mm:02d}", f"{months[m - 1]} {d}, {y}", f"DOB {d:02d}/{m:02d}/{y}")
    return forms[rng.integers(len(forms))]


def _ident(rng: np.random.Generator) -> str:
    digits = "".join(str(int(v)) for v in rng.integers(0, 10, int(rng.integers(5, 11))))
    forms = (digits, f"MRN {digits}", f"ID:{digits}", f"ACC{digits}", f"#{digits}", f"Pat.-Nr. {digits}",
             f"{digits[:3]}-{digits[3:]}", f"Acc# {digits}", f"NHS {digits}")
    return forms[rng.integers(len(forms))]


def _name(rng: np.random.Generator) -> str:
    first, last = FIRST[rng.integers(len(FIRST))], LAST[rng.integers(len(LAST))]
    forms = (f"{last}, {first}", f"{last}^{first}", f"{first} {last}", f"{last} {first[0]}.", f"{last.title()}, {first.title()}")
    return forms[rng.integers(len(forms))]


def _exposure(rng: np.random.Generator) -> str:
    kv, mas = int(rng.integers(50, 130)), round(float(rng.uniform(0.5, 20)), 1)
    forms = (f"{kv} kVp", f"{mas} mAs", f"{kv}kV {mas}mAs", f"S:{int(rng.integers(50, 900))}", f"EI {int(rng.integers(100, 2000))}",
             f"{int(rng.integers(100, 200))} cm", f"L:{round(float(rng.uniform(1, 3)), 1)}", f"DAP {mas} dGycm2")
    return forms[rng.integers(len(forms))]


def _initials(rng: np.random.Generator) -> str:
    letters = string.ascii_uppercase
    return "".join(letters[i] for i in rng.integers(0, 26, int(rng.integers(2, 4))))


TEXT_KINDS: tuple[Callable[[np.random.Generator], str], ...] = (
    _date, _ident, _name, _exposure, _initials,
    lambda rng: PLACES[rng.integers(len(PLACES))],
    lambda rng: POSITION[rng.integers(len(POSITION))],
)


def laterality_marker(height: int, rng: np.random.Generator) -> Marker:
    word = LATERALITY_WORDS[rng.integers(len(LATERALITY_WORDS))]
    glyph = render_text(word, height if len(word) == 1 else int(height * 0.6), rng, bold=True)
    style = ("bare", "tile", "tile", "box", "circle")[rng.integers(5)]
    return Marker(_rotate(_framed(glyph, style, rng), rng), BoxClass.LATERALITY, word)


def text_marker(height: int, rng: np.random.Generator) -> Marker:
    text = TEXT_KINDS[rng.integers(len(TEXT_KINDS))](rng)
    alpha = render_text(text, height, rng, bold=rng.random() < 0.3)
    if rng.random() < 0.12:
        alpha = dot_matrix(alpha, rng)
    if rng.random() < 0.1:
        alpha = _framed(alpha, "tile" if rng.random() < 0.5 else "box", rng)
    return Marker(_rotate(alpha, rng, small_only=rng.random() < 0.85), BoxClass.OTHER_MARKER, text)


@dataclass(frozen=True)
class Placed:
    xyxy: tuple[int, int, int, int]
    cls: BoxClass
    text: str

    @property
    def centre(self) -> tuple[int, int]:
        return (self.xyxy[0] + self.xyxy[2]) // 2, (self.xyxy[1] + self.xyxy[3]) // 2

    def scaled(self, factor: float) -> "Placed":
        """The same marker in an image resized by ``factor`` (corners rounded to pixels)."""
        return Placed(tuple(int(round(v * factor)) for v in self.xyxy), self.cls, self.text)  # type: ignore[arg-type]


def _paste(img: np.ndarray, alpha: np.ndarray, x: int, y: int, value: float, gain: float) -> None:
    h, w = alpha.shape
    region = img[y : y + h, x : x + w]
    a = np.clip(alpha * gain, 0, 1)
    region[:] = region * (1 - a) + value * a


class Layout:
    """Places markers without overlap, mostly near the edges and corners as on real plates."""

    def __init__(self, shape: tuple[int, int], rng: np.random.Generator) -> None:
        self.h, self.w = shape
        self.rng = rng
        self.taken: list[tuple[int, int, int, int]] = []

    def spot(self, mh: int, mw: int) -> tuple[int, int] | None:
        if mh >= self.h - 4 or mw >= self.w - 4:
            return None
        for _ in range(30):
            if self.rng.random() < 0.75:  # a band along the border
                band_y, band_x = int(self.h * 0.22), int(self.w * 0.22)
                y = int(self.rng.integers(0, max(1, band_y))) if self.rng.random() < 0.5 else \
                    int(self.rng.integers(max(0, self.h - band_y - mh), self.h - mh))
                x = int(self.rng.integers(0, self.w - mw))
                if self.rng.random() < 0.4:
                    x = int(self.rng.integers(0, max(1, band_x))) if self.rng.random() < 0.5 else \
                        int(self.rng.integers(max(0, self.w - band_x - mw), self.w - mw))
                    y = int(self.rng.integers(0, self.h - mh))
            else:
                y, x = int(self.rng.integers(0, self.h - mh)), int(self.rng.integers(0, self.w - mw))
            cand = (x - 3, y - 3, x + mw + 3, y + mh + 3)
            if all(cand[2] <= t[0] or t[2] <= cand[0] or cand[3] <= t[1] or t[3] <= cand[1] for t in self.taken):
                self.taken.append(cand)
                return x, y
        return None


def _burn(img: np.ndarray, marker: Marker, layout: Layout, rng: np.random.Generator) -> Placed | None:
    ys, xs = np.nonzero(marker.alpha > 0.15)
    if len(ys) == 0:  # a glyph the font lacks, or dots that missed every stroke
        return None
    mh, mw = marker.alpha.shape
    spot = layout.spot(mh, mw)
    if spot is None:
        return None
    x, y = spot
    local = float(np.median(img[y : y + mh, x : x + mw]))
    bright = rng.random() < (0.8 if local < 0.7 else 0.35)
    value = float(rng.uniform(0.85, 1.0)) if bright else float(rng.uniform(0.0, 0.15))
    gain = float(rng.uniform(0.5, 1.0)) if rng.random() < 0.25 else 1.0  # faint imprints
    _paste(img, marker.alpha, x, y, value, gain)
    return Placed((x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1), marker.cls, marker.text)


def _laterality_with_initials(img: np.ndarray, height: int, layout: Layout, rng: np.random.Generator) -> list[Placed]:
    """"R JS": a lead letter with the technician's initials beside it; the letter is laterality, the rest text."""
    side = "LR"[rng.integers(2)]
    letter = render_text(side, height, rng, bold=True)
    initials = render_text(_initials(rng), int(height * rng.uniform(0.4, 0.8)), rng)
    gap = max(2, int(height * rng.uniform(0.15, 0.5)))
    h = max(letter.shape[0], initials.shape[0])
    canvas_l = np.zeros((h, letter.shape[1]), np.float32)
    canvas_l[h - letter.shape[0] :, :] = letter
    spot = layout.spot(h, letter.shape[1] + gap + initials.shape[1])
    if spot is None:
        return []
    x, y = spot
    value = float(rng.uniform(0.85, 1.0))
    _paste(img, canvas_l, x, y, value, 1.0)
    xi = x + letter.shape[1] + gap
    _paste(img, initials, xi, y + h - initials.shape[0], value, 1.0)
    return [Placed((x, y + h - letter.shape[0], x + letter.shape[1], y + h), BoxClass.LATERALITY, side),
            Placed((xi, y + h - initials.shape[0], xi + initials.shape[1], y + h), BoxClass.OTHER_MARKER, "initials")]


def _ruler(img: np.ndarray, height: int, layout: Layout, rng: np.random.Generator) -> list[Placed]:
    """A ruler: a line with ticks (not labelled; it holds no identity) and number labels (labelled text)."""
    n = int(rng.integers(3, 7))
    step = int(height * rng.uniform(3, 6))
    spot = layout.spot(height * 3, step * n + height * 2)
    if spot is None:
        return []
    x, y = spot
    cv2.line(img, (x, y + 2 * height), (x + step * (n - 1), y + 2 * height), 0.95, max(1, height // 8))
    out = []
    for i in range(n):
        tx = x + i * step
        cv2.line(img, (tx, y + 2 * height), (tx, y + int(1.4 * height)), 0.95, max(1, height // 8))
        alpha = render_text(str(i * int(rng.choice([1, 5, 10]))), height, rng)
        ah, aw = alpha.shape
        if tx + aw < img.shape[1] and y + ah < img.shape[0]:
            _paste(img, alpha, tx, y, 0.95, 1.0)
            out.append(Placed((tx, y, tx + aw, y + ah), BoxClass.OTHER_MARKER, "ruler"))
    return out


def synthesize(background: np.ndarray, rng: np.random.Generator, existing: list[Placed] | None = None
               ) -> tuple[np.ndarray, list[Placed]]:
    """Burn a random set of markers into ``background`` (float display image in [0, 1], full resolution).

    Returns the new image and every marker's box, ``existing`` (real markers already in the background) included.
    """
    img = background.copy()
    layout = Layout(img.shape, rng)
    placed = list(existing or [])
    layout.taken.extend(p.xyxy for p in placed)
    long_side = max(img.shape)
    text_h = lambda: int(np.clip(rng.lognormal(np.log(long_side / 110), 0.45), 8, long_side / 25))  # noqa: E731
    n_text = int(rng.integers(0, 9))
    for _ in range(int(rng.integers(0, 3)) if rng.random() < 0.85 else 0):
        marker = laterality_marker(int(long_side * rng.uniform(0.012, 0.045)), rng)
        placed += [p for p in [_burn(img, marker, layout, rng)] if p]
    for _ in range(n_text):
        placed += [p for p in [_burn(img, text_marker(text_h(), rng), layout, rng)] if p]
    if rng.random() < 0.15:
        placed += _laterality_with_initials(img, int(long_side * rng.uniform(0.015, 0.04)), layout, rng)
    if rng.random() < 0.1:
        placed += _ruler(img, text_h(), layout, rng)
    return img, placed


def degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Acquisition and handling artefacts: gamma/contrast, blur, noise, quantisation."""
    img = np.clip(img, 0, 1) ** float(rng.uniform(0.6, 1.6))
    lo, hi = float(rng.uniform(0, 0.15)), float(rng.uniform(0.85, 1.0))
    img = lo + img * (hi - lo)
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.8)))
    if rng.random() < 0.5:
        img = img + rng.normal(0, float(rng.uniform(0.005, 0.04)), img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def jpeg_artefacts(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.integers(25, 90))
    ok, buf = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else view
