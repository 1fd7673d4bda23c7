"""Requests per second and latency (p50/p95) of the MONAI Label app's ``redact`` under concurrent clients.

Starts a real server (``monailabel start_server``) over a local folder of 2000-3000 px DICOM radiographs (the same
inputs as bench_redact.py), warms it up, then for each concurrency C runs C client threads that each send
``POST /infer/redact?image=ID&output=image`` in a loop. Not a timed test.

    python benchmarks/bench_server.py [--n 8] [--concurrency 1 2 4] [--requests 12] [--out benchmarks/results/server-cpu.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench_redact import build

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(studies: Path, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(REPO / "apps" / "radiograph_deid"),
           "--studies", str(studies), "--host", "127.0.0.1", "--port", str(port),
           "--conf", "workspace", str(work), "--conf", "header.key_file", str(work / "key")]
    proc = subprocess.Popen(cmd, stdout=open(work / "server.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(360):
        try:
            if requests.get(f"{url}/info/", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            time.sleep(0.5)
    raise RuntimeError("server did not start; see server.log")


def run_level(url: str, ids: list[str], clients: int, total: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            r = requests.post(f"{url}/infer/redact?image={ids[i % len(ids)]}&output=image", timeout=600)
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {"clients": clients, "requests": total, "requests_per_s": round(total / wall, 3),
            "latency_p50_s": round(statistics.median(lat), 3), "latency_p95_s": round(lat[max(0, math.ceil(0.95 * len(lat)) - 1)], 3),
            "status": statuses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=8, help="radiographs in the studies folder")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--requests", type=int, default=12, help="requests per concurrency level")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "server-cpu.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        studies, work = Path(tmp, "studies"), Path(tmp, "work")
        studies.mkdir()
        work.mkdir()
        build(studies, args.n)
        ids = sorted(p.stem for p in studies.glob("*.dcm"))
        proc, url = start_server(studies, work)
        try:
            requests.post(f"{url}/infer/redact?image={ids[0]}&output=image", timeout=600)  # warm-up: models load
            levels = [run_level(url, ids, c, max(args.requests, 2 * c)) for c in args.concurrency]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    except ImportError:
        gpu = ""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.machine()) if Path("/proc/cpuinfo").exists() else platform.machine()
    result = {"machine": f"{cpu}, {os.cpu_count()} cores"
                         + (f", {gpu}" if gpu else ", no GPU"),
              "images": len(ids), "endpoint": "POST /infer/redact (DICOM in, DICOM out)", "levels": levels}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
