"""radiograph-deid: de-identify radiographs (DICOM header, burned-in text, anatomy)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# Pins follow the stack the later layers need (MONAI Label 0.8.5 forces numpy<2 and pydicom<3,
# hence opencv<4.12). Every decoder comes from pip so no system codec is needed.
CORE = [
    "numpy>=1.24,<2",
    "pydicom>=2.4,<3",
    "opencv-python-headless>=4.8,<4.12",
    "onnxruntime>=1.17",
    "rapidocr-onnxruntime==1.4.4",  # ships the PP-OCRv4 text detection/recognition ONNX models
    "pytesseract>=0.3.10",  # the independent verifier (Debian package tesseract-ocr)
    "pylibjpeg>=2.0",
    "pylibjpeg-libjpeg>=2.1",
    "pylibjpeg-openjpeg>=2.3",
    "pylibjpeg-rle>=2.0",
    "python-gdcm>=3.0.22",
    "scipy>=1.10",  # nearest neighbours among a box's dots (dot_matrix) without a matrix of every pair
    "Pillow>=9.0",  # EXIF orientation of photographs (already needed by rapidocr-onnxruntime)
    "PyYAML>=6.0",
    "tqdm>=4.60",
]
TEST = ["pytest>=7", "pydicom-data>=1.0", "deid-data>=0.0.20"]
# Training the detector and the glyph classifier (inference needs none of this). On a CPU-only machine install
# torch first from a CPU wheel, or pip fetches the CUDA build (several GB).
TRAIN = ["ultralytics>=8.4,<9", "torch>=2.2", "torchvision>=0.17", "matplotlib>=3.7", "onnx>=1.15", "onnxslim>=0.1.40"]
# Serving for a lab: the MONAI bundle and the MONAI Label app (apps/radiograph_deid). monailabel's sam2 dependency
# is a source build: install with SAM2_BUILD_CUDA=0 and --no-build-isolation after torch (scripts/setup.sh --serve).
SERVE = TRAIN + ["monailabel==0.8.5", "monai>=1.4", "dicomweb-client>=0.59", "requests>=2.28"]

setup(
    name="radiograph-deid",
    version="0.1.0",
    description="De-identify radiographs: DICOM PS3.15 header profile, burned-in text redaction "
    "that keeps laterality markers, and a fail-closed verification pass.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="AGPL-3.0-or-later",
    python_requires=">=3.10",
    packages=find_packages(include=["radiograph_deid", "radiograph_deid.*"]),
    package_data={"radiograph_deid": ["py.typed", "models/*.onnx", "models/*.pt", "models/*.yaml", "models/*.md"]},
    install_requires=CORE,
    extras_require={"test": TEST, "train": TRAIN, "serve": SERVE},
    entry_points={"console_scripts": ["radiograph-deid=radiograph_deid.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: GNU Affero General Public License v3 or later (AGPLv3+)",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
