"""What the gateway answers when it refuses or fails a request: OpenAI-style JSON errors.

The OpenAI and DashScope SDKs read `{"error": {"message", "type", "code"}}` and raise their own
typed errors from it, so every refusal (bad path, wrong key, body too large, upstream down) has
that shape; an upstream failure adds the probe's diagnosis remedy inside "error".
"""

from __future__ import annotations

import json

from shared import logs
from shared.errors import VpcprobeError
from shared.text_enum import TextEnum


class ErrorType(TextEnum):
    """OpenAI's error `type` strings (what the SDKs and clients switch on)."""

    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    PERMISSION = "permission_error"
    NOT_FOUND = "not_found_error"
    RATE_LIMIT = "rate_limit_error"
    UPSTREAM = "upstream_error"
    SERVER = "server_error"


class GatewayError(VpcprobeError):
    """A request the gateway answers itself: HTTP status, OpenAI error type and code, a message for a
    person, the diagnosis remedy for upstream failures, and extra response headers (Retry-After, Allow)."""

    def __init__(
        self,
        status: int,
        type: ErrorType,  # OpenAI's field name
        code: str,
        message: str,
        *,
        remedy: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.code = code
        self.message = message
        self.remedy = remedy
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        """The response body: compact UTF-8 JSON; known secrets are masked even if a message quoted one."""
        error: dict[str, str] = {
            "message": logs.redact_text(self.message),
            "type": self.type.value,
            "code": self.code,
        }
        if self.remedy:
            error["remedy"] = logs.redact_text(self.remedy)
        return json.dumps({"error": error}, separators=(",", ":"), ensure_ascii=False).encode()

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.type.value}, {self.code!r}, {self.message!r})"


class ResponseAborted(VpcprobeError):
    """Raised to the server only to make it abort a response that has started (the client sees the connection
    break); the cause is in the request's log line, so the server logs nothing of it."""
