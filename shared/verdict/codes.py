"""Diagnosis codes, in the terms of the Model Studio PrivateLink and PAI-EAS gateway documents.

A code is what a caller matches on (alert routing, dashboards); message says what was observed,
remedy says what to change, citing the seed documents' own troubleshooting steps.
"""

from __future__ import annotations

from dataclasses import dataclass

# Each code: (summary, remedy). Remedies may use {host}, {port}, {scheme}, {region}, {service}.
CODES: dict[str, tuple[str, str]] = {
    "dns_unresolved": (
        "the name does not resolve",
        "Check the DNS/PrivateZone record for {host} and that its effective scope includes this VPC. Model "
        "Studio's custom domain (vpc-<region>.dashscope.aliyuncs.com) resolves only inside the endpoint's own "
        "VPC unless a PrivateZone CNAME points it at the default domain; an EAS VPC address resolves only in "
        "the service's region; host records may not contain underscores.",
    ),
    "dns_public_address": (
        "the name resolves to a public address, so traffic is not using the private endpoint",
        "Point the name at the interface endpoint: use the endpoint's default domain "
        "(ep-<id>.dashscope.<region>.privatelink.aliyuncs.com) or a PrivateZone CNAME to it, "
        "or the EAS VPC address (<uid>.vpc.<region>.pai-eas.aliyuncs.com).",
    ),
    "connect_timeout": (
        "TCP connect timed out",
        "The endpoint's security group must allow inbound {port} (80 for HTTP, 443 for HTTPS) from the "
        "function's vSwitch CIDR; the function must be in the endpoint's VPC, or connected by VPC peering/CEN.",
    ),
    "connect_refused": (
        "TCP connection refused",
        "Nothing accepts connections on {port} at this address: check the endpoint ENI/zone is available "
        "and the port matches the scheme (80 for http, 443 for https); for an EAS instance ip:port the "
        "address changes when the service restarts.",
    ),
    "connection_reset": (
        "the connection was reset",
        "A security group, network ACL or the upstream closed the connection; check the endpoint security "
        "group rules for 80/443 and retry; if it persists, check the service's health.",
    ),
    "tls_failed": (
        "TLS handshake failed",
        "Check the certificate and the name used; pin a private CA with ca_bundle if you use one.",
    ),
    "tls_on_http_only": (
        "TLS handshake failed on the endpoint's default domain",
        "The default endpoint domain supports only HTTP: use http://{host}, or HTTPS through the custom "
        "domain https://vpc-{region}.dashscope.aliyuncs.com.",
    ),
    "tls_cert_expiring": (
        "the TLS certificate expires soon",
        "Renew the certificate served for {host}.",
    ),
    "unauthorized": (
        "the credential was rejected",
        "Check the API key or token; DashScope API keys are region-specific (a key from another region or "
        "workspace is rejected); EAS tokens change when regenerated — take the current one from the "
        "service's endpoint information.",
    ),
    "forbidden": (
        "access denied",
        "The key is valid but lacks access: check the workspace (X-DashScope-WorkSpace) and the model's "
        "authorization, or the RAM policy of the caller.",
    ),
    "path_not_found": (
        "wrong path",
        "The request URL is <endpoint> + API path: DashScope /compatible-mode/v1/... or /api/v1/...; EAS "
        "<endpoint>/api/predict/<service>/<api path> — a wrong path is the most common cause of 404.",
    ),
    "eas_service_not_found": (
        "the EAS gateway does not know the service",
        "The gateway does not know service '{service}' or is not ready: check the service name "
        "(group services are group.service) and that the service is deployed in region {region}.",
    ),
    "request_timeout": (
        "the upstream timed out",
        "The EAS gateway's default request timeout is 5 s (metadata.rpc.keepalive raises it); check the "
        "model's latency.",
    ),
    "body_too_large": (
        "request body too large",
        "Requests through an EAS or Model Studio gateway may not exceed 1 MB; send less, or split the input.",
    ),
    "rate_limited": (
        "throttled",
        "Rate limit reached (the EAS shared gateway allows 1,000 QPS per service; DashScope quotas per "
        "model): lower the probe rate or raise the quota.",
    ),
    "eas_queue_full": (
        "the EAS service's queue is full",
        "All instances are busy and the request queue (default 64) is full: scale out the service or "
        "raise its queue size.",
    ),
    "no_ready_instance": (
        "the service has no instance in Ready state",
        "Check the EAS service's instances (restarting, out of resources, failing health checks).",
    ),
    "model_unavailable": (
        "the model is unavailable",
        "The model is temporarily unavailable; retry later or switch to another model.",
    ),
    "server_error": (
        "upstream server error",
        "The upstream failed; check its status and logs; it is not a network-path problem.",
    ),
    "bad_request": (
        "the upstream rejected the request",
        "Check the probe's model name and body against the API.",
    ),
    "unexpected_status": (
        "unexpected HTTP status",
        "Check the probe's expected status against what the endpoint returns.",
    ),
    "body_mismatch": (
        "the response body does not match the expected pattern",
        "Check the probe's expect_body against what the endpoint returns.",
    ),
    "stream_error_frame": (
        "an error frame arrived inside a 200 stream",
        "The request was accepted but failed mid-stream; read the frame's code and message.",
    ),
    "stream_stalled": (
        "the stream stopped sending frames",
        "The upstream stalled mid-stream; check the service's health and any proxy timeouts.",
    ),
    "read_timeout": (
        "no response before the timeout",
        "The connection opened but the upstream did not answer in time: check the service's load and "
        "instances, or raise the probe timeout.",
    ),
    "protocol_error": (
        "the upstream broke the HTTP protocol",
        "Check that the port speaks {scheme} (80 for http, 443 for https).",
    ),
    "slow": (
        "slower than the latency objective",
        "Working, but slow: check the model's load and the network path.",
    ),
    "zones_down": (
        "some of the endpoint's addresses fail",
        "One zone's endpoint ENI (or instance) is failing while others answer; check that zone's vSwitch, "
        "the endpoint's zone status, and that the security group covers every zone.",
    ),
    "credential_unavailable": (
        "the credential could not be obtained",
        "Fix the credential reference named in the message.",
    ),
    "eas_service_not_running": (
        "the EAS service is not running",
        "Start the service or wait for its instances to be Ready.",
    ),
}


@dataclass(frozen=True)
class Diagnosis:
    code: str
    message: str
    remedy: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "remedy": self.remedy}


def diagnose(code: str, detail: str = "", **context: object) -> Diagnosis:
    """A diagnosis for `code`; `detail` adds what was observed (status, address, upstream message)."""
    summary, remedy = CODES[code]
    values = {"host": "the host", "port": "80/443", "scheme": "http", "region": "<region>", "service": "<service>"}
    values.update({k: str(v) for k, v in context.items() if v is not None})
    message = f"{summary}: {detail}" if detail else summary
    return Diagnosis(code, message, remedy.format(**values))


def for_status(status: int, *, kind: str, body: bytes) -> str | None:
    """Map an unexpected HTTP status to a code; None means the status is fine."""
    if 200 <= status < 300:
        return None
    text = body[:2048].decode("utf-8", "replace").lower()
    if status == 401:
        return "unauthorized"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "eas_service_not_found" if kind == "eas" and not body.strip() else "path_not_found"
    if status == 408:
        return "request_timeout"
    if status == 413:
        return "body_too_large"
    if status == 429:
        return "rate_limited"
    if status == 450:
        return "eas_queue_full"
    if status == 503:
        if kind == "eas" or "no healthy upstream" in text:
            return "no_ready_instance"
        return "model_unavailable"
    if status == 400:
        return "bad_request"
    if status >= 500:
        return "server_error"
    return "unexpected_status"
