"""The probe request for a target: method, URL, headers and body for its mode and API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.config.targets import Target

USER_AGENT = "vpcprobe/0.1"


@dataclass
class RequestSpec:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    stream: bool = False
    expect_status: tuple[int, ...] = (200,)
    expect_body: str | None = None


def build_request(target: Target, token: str | None) -> RequestSpec:
    """The probe request for a target's mode; the token goes into the header style its API wants."""
    settings, ep = target.probe, target.endpoint
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}" if target.auth == "bearer" else token
    if target.workspace:
        headers["X-DashScope-WorkSpace"] = target.workspace
    body: Any = None
    method = "GET"
    path = target.request_path
    if settings.mode == "chat":
        method = "POST"
        messages = [{"role": "user", "content": "ping"}]
        if target.kind == "dashscope" and target.api == "native":
            body = {
                "model": settings.model,
                "input": {"messages": messages},
                "parameters": {"max_tokens": 1, "result_format": "message", "incremental_output": True},
            }
            if settings.stream:
                headers["X-DashScope-SSE"] = "enable"
        else:
            body = {"model": settings.model, "messages": messages, "max_tokens": 1}
            if settings.stream:
                body["stream"] = True
    elif settings.mode == "http":
        method, body = settings.method, settings.body
    if settings.stream:
        headers["Accept"] = "text/event-stream"
    headers.update(settings.headers)
    raw = None
    if body is not None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    return RequestSpec(
        method,
        ep.url_for(path),
        headers,
        raw,
        settings.stream,
        settings.expect_status,
        settings.expect_body,
    )
