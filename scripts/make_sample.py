"""Regenerate examples/sample: small synthetic radiographs with burned-in fake PHI and an L/R marker."""
from __future__ import annotations

from pathlib import Path

import cv2
import pydicom

from radiograph_deid.synthetic import Burn, burn, compress, phantom, sample_radiograph, to_stored

OUT = Path(__file__).resolve().parents[1] / "examples" / "sample"


def main() -> None:
    (OUT / "ward3").mkdir(parents=True, exist_ok=True)
    ds, _ = sample_radiograph(768, 640, "MONOCHROME1", 12, "CR", seed=1)
    compress(ds, pydicom.uid.JPEG2000Lossless).save_as(OUT / "chest_cr_monochrome1.dcm", write_like_original=False)
    burns = [Burn("R JS", 30, 40, 22), Burn("PORTABLE  SUPINE", 300, 700, 18), Burn("ID 99381-22", 420, 40, 18)]
    ds, _ = sample_radiograph(768, 768, "MONOCHROME2", 12, "DX", seed=2, burns=burns)
    compress(ds, pydicom.uid.RLELossless).save_as(OUT / "ward3" / "portable_dx.dcm", write_like_original=False)
    img = to_stored(burn(phantom(600, 600, seed=3), [Burn("SMITH J 1984-02-11", 20, 20, 16), Burn("L", 520, 90, 34, thickness=4)]), 8, False)
    cv2.imwrite(str(OUT / "ward3" / "bedside.png"), img)


if __name__ == "__main__":
    main()
