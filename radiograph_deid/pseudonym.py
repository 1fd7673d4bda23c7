"""Keyed, repeatable pseudonyms: the same input and key give the same output in every run.

HMAC-SHA256 under a secret key that never leaves the key file (never written to output or logs).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path


class KeyFileError(RuntimeError):
    """The secret key cannot be read or created."""


def existing_key(path: str | Path) -> bytes | None:
    """The key a run would use, read and never created: ``RADIOGRAPH_DEID_KEY`` (hex), which takes precedence
    for sites that keep the key in a secrets manager, else the key file; None where neither is there. Raises
    ``KeyFileError`` for a key that cannot be used."""
    env = os.environ.get("RADIOGRAPH_DEID_KEY")
    if env:
        try:
            return bytes.fromhex(env.strip())
        except ValueError:
            raise KeyFileError("RADIOGRAPH_DEID_KEY must be hexadecimal") from None
    p = Path(path).expanduser()
    try:
        if not p.exists():
            return None
        key = bytes.fromhex(p.read_text().strip())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot use the key file {p}: {exc}") from exc
    if len(key) < 16:
        raise KeyFileError(f"the key in {p} is too short (at least 16 bytes of hex expected)")
    return key


def load_or_create_key(path: str | Path) -> bytes:
    """The key (``existing_key``), creating a random 256-bit key file (mode 0600) on first use."""
    key = existing_key(path)
    if key is not None:
        return key
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex() + "\n")
    except OSError as exc:
        raise KeyFileError(f"cannot use the key file {p}: {exc}") from exc
    return key


def da_date(value: str) -> date | None:
    """The date of a DA value (YYYYMMDD) or of a DT value's first eight characters; None when it is no date."""
    text = value.strip()
    try:
        return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except (ValueError, IndexError):
        return None


@dataclass(frozen=True)
class PatientPseudonym:
    """What one patient's headers are given: the pseudonymous PatientID (and PatientName), and the shift of their
    dates under the Retain Longitudinal Temporal Information with Modified Dates option."""

    patient_id: str
    date_shift: timedelta


class Pseudonymizer:
    def __init__(self, key: bytes, prefix: str = "ANON", max_date_shift_days: int = 3650) -> None:
        self._key = key
        self.prefix = prefix
        self.max_shift = max_date_shift_days

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    def uid(self, uid: str) -> str:
        """A new UID under the 2.25 (UUID-derived) root; at most 44 characters."""
        return "2.25." + str(int.from_bytes(self._digest("uid", uid.strip())[:16], "big"))

    def patient_id(self, patient_id: str, issuer: str = "") -> str:
        token = base64.b32encode(self._digest("pid", f"{issuer}\x00{patient_id.strip()}")[:10]).decode()
        return f"{self.prefix}-{token}"

    def patient(self, patient_id: str, issuer: str = "") -> PatientPseudonym:
        """The pseudonym and date shift of the patient ``patient_id`` of ``issuer`` (IssuerOfPatientID; "" when
        the header has none), as every run with this key gives them."""
        return PatientPseudonym(self.patient_id(patient_id, issuer), self.date_shift(issuer + "\x00" + patient_id))

    def name(self, value: str) -> str:
        """A file name for ``value`` (an input's relative path) that reveals nothing of it without the key."""
        return self._digest("name", value).hex()[:32]

    def date_shift(self, patient_id: str) -> timedelta:
        """The same backward shift (1..max days) for every date of one patient keeps intervals intact."""
        n = int.from_bytes(self._digest("shift", patient_id.strip())[:8], "big")
        return timedelta(days=-(1 + n % self.max_shift))

    @staticmethod
    def shift_date(value: str, shift: timedelta) -> str:
        """Shift a DA value (YYYYMMDD) or the date part of a DT value; unparseable values become empty."""
        d = da_date(value)
        return "" if d is None else (d + shift).strftime("%Y%m%d") + value.strip()[8:]
