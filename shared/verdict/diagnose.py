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
    message = f"{summary}: {detail}" if detail else summary
    return Diagnosis(code, message, remedy.format(**remedy_values(**context)))


def remedy_values(**context: object) -> dict[str, str]:
    """What fills a remedy's placeholders: the target's own values where known, else words that read
    right in the sentence; never a bare `<region>` left for the reader to puzzle over."""
    known = {k: str(v) for k, v in context.items() if v is not None and str(v)}
    region = known.get("region")
    return {
        "host": known.get("host", "the host"),
        "port": known.get("port", "80/443"),
        "scheme": known.get("scheme", "http or https"),
        "region": region or "the endpoint's region",
        "in_region": f"in region {region}" if region else "in the endpoint's region",
        "service": f"service '{known['service']}'" if "service" in known else "the service named in the URL",
        "custom_domain": (
            f"https://vpc-{region}.dashscope.aliyuncs.com" if region
            else "https://vpc-REGION.dashscope.aliyuncs.com, REGION being the endpoint's region"
        ),
    }


# OpenSSL's reasons when the bytes that came back in place of a ServerHello are not TLS at all: on a port
# that speaks plain HTTP they are "HTTP/1.1 400 ..." ("record layer failure" is OpenSSL 3.2+'s wording).
PLAIN_HTTP_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL", "HTTP_REQUEST"})


def for_tls_failure(reason: str | None, form: str | None) -> Code:
    """The code for a failed TLS handshake: the PrivateLink default domain (HTTP only) has its own; any
    other port that answered in plain HTTP has another; the rest is a certificate or protocol matter."""
    if form == "privatelink-default":
        return Code.TLS_ON_HTTP_ONLY
    if reason in PLAIN_HTTP_TLS_REASONS:
        return Code.TLS_PLAIN_HTTP
    return Code.TLS_FAILED


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
