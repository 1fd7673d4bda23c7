"""One annotation round end to end with a real MONAI Label server and two real Orthanc servers (loopback):
upload to the source PACS -> next sample -> markers -> corrected boxes saved -> a one-epoch training round in the
server's own worker process -> markers with the new weights -> redact -> the result stored to the destination."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from .test_app import APP_DIR, REPO, make_studies

requests = pytest.importorskip("requests")
pytest.importorskip("monailabel")
pytest.importorskip("ultralytics")
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
pytestmark = pytest.mark.skipif(not Path(ORTHANC).exists(), reason="Orthanc is not installed (Debian: orthanc)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def start(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("lab")
    procs = []
    try:
        urls = []
        for name in ("source", "deidentified"):
            port = free_port()
            procs.append(start([sys.executable, str(REPO / "scripts" / "orthanc.py"), "--dir", str(tmp / name),
                                "--port", str(port), "--name", name], tmp / f"{name}.log"))
            wait_for(f"http://127.0.0.1:{port}/system", procs[-1], 60)
            urls.append(f"http://127.0.0.1:{port}")
        for f in sorted(make_studies(tmp / "files").glob("*.dcm")):
            assert requests.post(f"{urls[0]}/instances", data=f.read_bytes(), timeout=30).status_code == 200
        port = free_port()
        env = {**os.environ, "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}
        cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(APP_DIR),
               "--studies", f"{urls[0]}/dicom-web", "--host", "127.0.0.1", "--port", str(port),
               "--conf", "workspace", str(tmp / "workspace"), "--conf", "destination", f"{urls[1]}/dicom-web",
               "--conf", "header.key_file", str(tmp / "secret.key")]
        procs.append(start(cmd, tmp / "server.log", env))
        wait_for(f"http://127.0.0.1:{port}/info/", procs[-1], 180)
        yield f"http://127.0.0.1:{port}", urls[0], urls[1], tmp
    finally:
        for p in reversed(procs):
            stop(p)


def test_annotation_round_over_orthanc(lab) -> None:
    server, source, destination, tmp = lab
    info = requests.get(f"{server}/info/").json()
    assert {"markers", "redact"} <= set(info["models"]) and "least_confident" in info["strategies"]
    before = sorted(requests.get(f"{source}/instances").json())
    assert len(before) == 4

    labelled = []
    for _ in range(2):  # two annotators, one after the other: different images
        sample = requests.post(f"{server}/activelearning/least_confident", json={}).json()
        assert sample.get("id") and sample["id"] not in labelled
        markers = requests.post(f"{server}/infer/markers?image={sample['id']}&output=json").json()
        assert markers["model"] == "shipped"
        corrected = {"boxes": [{"xyxy": b["xyxy"], "cls": b["cls"]} for b in markers["boxes"]]
                     + [{"xyxy": [4, 4, 40, 24], "cls": "text"}]}
        r = requests.put(f"{server}/datastore/label?image={sample['id']}",
                         files={"label": ("label.json", json.dumps(corrected), "application/json")})
        assert r.status_code == 200, r.text
        labelled.append(sample["id"])

    r = requests.post(f"{server}/train/markers", json={"max_epochs": 1})
    assert r.status_code == 200, r.text
    for _ in range(600):
        status = requests.get(f"{server}/train/").json()
        if status.get("status") in ("DONE", "ERROR"):
            break
        time.sleep(1)
    assert status["status"] == "DONE", status
    # one epoch may or may not redact the round's validation images better than the shipped weights: published
    # only if it does (the decision itself is tested with given scores in test_app and test_serving_lib)
    current = tmp / "workspace" / "models" / "current.json"
    served = requests.post(f"{server}/infer/markers?image={labelled[0]}&output=json").json()["model"]
    if current.exists():
        pointer = json.loads(current.read_text())
        assert sorted(pointer["train_images"] + pointer["val_images"]) == sorted(labelled)
        assert served == pointer["version"], "the server did not pick up the new weights"
    else:
        assert served == "shipped"

    r = requests.post(f"{server}/infer/redact?image={labelled[0]}&output=image")
    assert r.status_code == 200, r.text
    out = tmp / "redacted.dcm"
    out.write_bytes(r.content)
    ds = pydicom.dcmread(out)
    assert ds.PatientIdentityRemoved == "YES"
    found = requests.get(f"{destination}/dicom-web/instances?SOPInstanceUID={ds.SOPInstanceUID}").json()
    assert len(found) == 1, "the de-identified result was not stored to the destination"
    assert sorted(requests.get(f"{source}/instances").json()) == before, "the source PACS was changed"


def test_server_log_carries_no_phi(lab) -> None:
    """Names, IDs, accession numbers and birth dates of the uploaded images never reach the server's log."""
    _, _, _, tmp = lab
    log = (tmp / "server.log").read_text(errors="replace")
    assert "Uvicorn running" in log
    for f in sorted((tmp / "files").glob("*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        for keyword in ("PatientName", "PatientID", "AccessionNumber", "InstitutionName", "PatientBirthDate"):
            value = str(ds.get(keyword, "") or "").strip()
            if len(value) > 2:
                assert value not in log, f"{keyword} of {f.name} is in the server log"
