"""Client mistakes become 4xx answers with a reason (MONAI Label would answer a bare 500)."""
from __future__ import annotations

from fastapi import HTTPException


def bad_request(reason: str) -> HTTPException:
    return HTTPException(status_code=400, detail=reason)


def not_found(reason: str) -> HTTPException:
    return HTTPException(status_code=404, detail=reason)


def unsupported(reason: str) -> HTTPException:
    return HTTPException(status_code=415, detail=reason)


def unprocessable(reason: str) -> HTTPException:
    return HTTPException(status_code=422, detail=reason)
