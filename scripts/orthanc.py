#!/usr/bin/env python3
"""Start a private Orthanc (Debian packages orthanc + orthanc-dicomweb) on loopback, for a lab try-out or tests.

    python scripts/orthanc.py --dir ~/orthanc-source --port 8042        # DICOMweb at http://127.0.0.1:8042/dicom-web
    python scripts/orthanc.py --dir ~/orthanc-deid --port 8043          # a second one as the de-identified destination

Only 127.0.0.1 is served, no DICOM port is opened, and the storage lives in --dir. The process runs in the
foreground (Ctrl-C stops it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")


def write_config(folder: Path, port: int, name: str = "radiograph-deid") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    plugins = [d for d in PLUGIN_DIRS if Path(d).is_dir()][:1]
    config = {
        "Name": name, "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": port,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomServerEnabled": False,
        "Plugins": plugins, "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full"},
        "HttpTimeout": 60, "StableAge": 1, "SaveJobs": False,
    }
    config = {k: v for k, v in config.items() if v is not None}
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, required=True, help="storage and configuration folder")
    p.add_argument("--port", type=int, default=8042)
    p.add_argument("--name", default="radiograph-deid")
    args = p.parse_args()
    exe = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not Path(exe).exists():
        print("Orthanc is not installed: sudo apt-get install orthanc orthanc-dicomweb", file=sys.stderr)
        return 2
    config = write_config(args.dir.expanduser(), args.port, args.name)
    os.execv(exe, [exe, str(config)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
