"""Real DICOM from the pip data packages (pydicom-data, deid-data) and generated cases. No ../shared."""
from __future__ import annotations

import hashlib
import os
from importlib.metadata import distribution
from pathlib import Path

import pytest

os.environ.setdefault("OMP_THREAD_LIMIT", "1")


def pydicom_data(name: str) -> Path:
    path = Path(str(distribution("pydicom-data").locate_file(f"data_store/data/{name}")))
    if not path.is_file():
        pytest.skip(f"pydicom-data lacks {name}")
    return path


def deid_data(rel: str) -> Path:
    import deid_data as pkg

    return Path(pkg.__file__).parent / "data" / rel


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def key_overrides(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return [f"header.key_file={tmp_path_factory.mktemp('key') / 'secret.key'}"]
