"""A diagnosis: a code, what was observed, and the remedy written for this endpoint."""

from __future__ import annotations

from dataclasses import dataclass

from shared.verdict.codes import CATALOG, Code


@dataclass(frozen=True)
class Diagnosis:
    code: Code
    message: str
    remedy: str

    def to_dict(self) -> dict[str, str]:
        return {"code": str(self.code), "message": self.message, "remedy": self.remedy}


def diagnose(code: Code, detail: str = "", **context: object) -> Diagnosis:
    """A diagnosis for `code`; `detail` adds what was observed (status, address, upstream message)."""
    summary, remedy = CATALOG[code]
    values = {"host": "the host", "port": "80/443", "scheme": "http", "region": "<region>", "service": "<service>"}
    values.update({k: str(v) for k, v in context.items() if v is not None})
    message = f"{summary}: {detail}" if detail else summary
    return Diagnosis(code, message, remedy.format(**values))


def for_status(status: int, *, kind: str, body: bytes) -> Code | None:
    """Map an unexpected HTTP status to a code; None means the status is fine."""
    if 200 <= status < 300:
        return None
    text = body[:2048].decode("utf-8", "replace").lower()
    if status == 401:
        return Code.UNAUTHORIZED
    if status == 403:
        return Code.FORBIDDEN
    if status == 404:
        return Code.EAS_SERVICE_NOT_FOUND if kind == "eas" and not body.strip() else Code.PATH_NOT_FOUND
    if status == 408:
        return Code.REQUEST_TIMEOUT
    if status == 413:
        return Code.BODY_TOO_LARGE
    if status == 429:
        return Code.RATE_LIMITED
    if status == 450:
        return Code.EAS_QUEUE_FULL
    if status == 503:
        if kind == "eas" or "no healthy upstream" in text:
            return Code.NO_READY_INSTANCE
        return Code.MODEL_UNAVAILABLE
    if status == 400:
        return Code.BAD_REQUEST
    if status >= 500:
        return Code.SERVER_ERROR
    return Code.UNEXPECTED_STATUS
