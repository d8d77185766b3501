"""Diagnosis codes, in the terms of the Model Studio PrivateLink and PAI-EAS gateway documents.

A code is what a caller matches on (alert routing, dashboards); message says what was observed,
remedy says what to change, citing the seed documents' own troubleshooting steps.
"""

from __future__ import annotations

from shared.text_enum import TextEnum


class Code(TextEnum):
    """A diagnosis code; the values are a public contract (logs, --json, alert messages, state)."""

    DNS_UNRESOLVED = "dns_unresolved"
    DNS_PUBLIC_ADDRESS = "dns_public_address"
    CONNECT_TIMEOUT = "connect_timeout"
    NO_ROUTE = "no_route"
    CONNECT_REFUSED = "connect_refused"
    CONNECTION_RESET = "connection_reset"
    TLS_FAILED = "tls_failed"
    TLS_ON_HTTP_ONLY = "tls_on_http_only"
    TLS_PLAIN_HTTP = "tls_plain_http"
    TLS_CERT_EXPIRING = "tls_cert_expiring"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    PATH_NOT_FOUND = "path_not_found"
    EAS_SERVICE_NOT_FOUND = "eas_service_not_found"
    REQUEST_TIMEOUT = "request_timeout"
    BODY_TOO_LARGE = "body_too_large"
    RATE_LIMITED = "rate_limited"
    EAS_QUEUE_FULL = "eas_queue_full"
    NO_READY_INSTANCE = "no_ready_instance"
    MODEL_UNAVAILABLE = "model_unavailable"
    SERVER_ERROR = "server_error"
    BAD_REQUEST = "bad_request"
    UNEXPECTED_STATUS = "unexpected_status"
    BODY_MISMATCH = "body_mismatch"
    STREAM_ERROR_FRAME = "stream_error_frame"
    STREAM_STALLED = "stream_stalled"
    READ_TIMEOUT = "read_timeout"
    PROTOCOL_ERROR = "protocol_error"
    REQUEST_HEADER_INVALID = "request_header_invalid"
    SLOW = "slow"
    ZONES_DOWN = "zones_down"
    CREDENTIAL_UNAVAILABLE = "credential_unavailable"
    EAS_SERVICE_NOT_RUNNING = "eas_service_not_running"
    PROBER_OVERLOADED = "prober_overloaded"
    PROBER_ERROR = "prober_error"


# Each code: (summary, remedy). Remedies may use {host}, {port}, {scheme}, {region}, {service}, {in_region}
# and {custom_domain}: diagnose() fills each with the target's value, or words that read right without it.
CATALOG: dict[Code, tuple[str, str]] = {
    Code.DNS_UNRESOLVED: (
        "the name does not resolve",
        "Check the DNS/PrivateZone record for {host} and that its effective scope includes this VPC. Model "
        "Studio's custom domain ({custom_domain}) resolves only inside the endpoint's own "
        "VPC unless a PrivateZone CNAME points it at the default domain; an EAS VPC address resolves only in "
        "the service's region; host records may not contain underscores.",
    ),
    Code.DNS_PUBLIC_ADDRESS: (
        "the name resolves to a public address, so traffic is not using the private endpoint",
        "Point the name at the interface endpoint: use the endpoint's default domain "
        "(ep-ID.dashscope.REGION.privatelink.aliyuncs.com, in the endpoint's console page) or a PrivateZone "
        "CNAME to it, or the EAS VPC address (UID.vpc.REGION.pai-eas.aliyuncs.com, in the service's "
        "invocation information).",
    ),
    Code.CONNECT_TIMEOUT: (
        "TCP connect timed out",
        "The endpoint's security group must allow inbound {port} (80 for HTTP, 443 for HTTPS) from the "
        "function's vSwitch CIDR; the function must be in the endpoint's VPC, or connected by VPC peering/CEN.",
    ),
    Code.NO_ROUTE: (
        "no route to the address",
        "The function's network has no route to this address (the kernel answered at once, nothing was "
        "sent): check the route table of the function's vSwitch, that the function's vSwitch is in the "
        "endpoint's VPC or that the VPCs are connected (CEN transit router or VPC peering, with routes in "
        "both directions), and the outbound rules of the function's security group.",
    ),
    Code.CONNECT_REFUSED: (
        "TCP connection refused",
        "Nothing accepts connections on {port} at this address: check the endpoint ENI/zone is available "
        "and the port matches the scheme (80 for http, 443 for https); for an EAS instance ip:port the "
        "address changes when the service restarts.",
    ),
    Code.CONNECTION_RESET: (
        "the connection was reset",
        "A security group, network ACL or the upstream closed the connection; check the endpoint security "
        "group rules for 80/443 and retry; if it persists, check the service's health.",
    ),
    Code.TLS_FAILED: (
        "TLS handshake failed",
        "Check the certificate and the name used; pin a private CA with ca_bundle if you use one.",
    ),
    Code.TLS_ON_HTTP_ONLY: (
        "TLS handshake failed on the endpoint's default domain",
        "The default endpoint domain supports only HTTP: use http://{host}, or HTTPS through the custom "
        "domain {custom_domain}.",
    ),
    Code.TLS_PLAIN_HTTP: (
        "the port answered the TLS handshake in plain HTTP",
        "This port speaks plain HTTP, not TLS: use http://{host} (the PrivateLink default endpoint domain "
        "is HTTP only), or the HTTPS port of the endpoint (443) through a domain that serves HTTPS.",
    ),
    Code.TLS_CERT_EXPIRING: (
        "the TLS certificate expires soon",
        "Renew the certificate served for {host}.",
    ),
    Code.UNAUTHORIZED: (
        "the credential was rejected",
        "Check the API key or token; DashScope API keys are region-specific (a key from another region or "
        "workspace is rejected); EAS tokens change when regenerated — take the current one from the "
        "service's endpoint information.",
    ),
    Code.FORBIDDEN: (
        "access denied",
        "The key is valid but lacks access: check the workspace (X-DashScope-WorkSpace) and the model's "
        "authorization, or the RAM policy of the caller.",
    ),
    Code.PATH_NOT_FOUND: (
        "wrong path",
        "The request URL is the endpoint plus the API path: DashScope /compatible-mode/v1/... or /api/v1/...; "
        "EAS /api/predict/SERVICE/ followed by the model's own path — a wrong path is the most common cause "
        "of 404.",
    ),
    Code.EAS_SERVICE_NOT_FOUND: (
        "the EAS gateway does not know the service",
        "The EAS gateway does not know {service} or is not ready: check the service name (group services "
        "are group.service) and that the service is deployed {in_region} and Running.",
    ),
    Code.REQUEST_TIMEOUT: (
        "the upstream timed out",
        "The EAS gateway's default request timeout is 5 s (metadata.rpc.keepalive raises it); check the "
        "model's latency.",
    ),
    Code.BODY_TOO_LARGE: (
        "request body too large",
        "Requests through an EAS or Model Studio gateway may not exceed 1 MB; send less, or split the input.",
    ),
    Code.RATE_LIMITED: (
        "throttled",
        "Rate limit reached (the EAS shared gateway allows 1,000 QPS per service; DashScope quotas per "
        "model): lower the probe rate or raise the quota.",
    ),
    Code.EAS_QUEUE_FULL: (
        "the EAS service's queue is full",
        "All instances are busy and the request queue (default 64) is full: scale out the service or "
        "raise its queue size.",
    ),
    Code.NO_READY_INSTANCE: (
        "the service has no instance in Ready state",
        "Check the EAS service's instances (restarting, out of resources, failing health checks).",
    ),
    Code.MODEL_UNAVAILABLE: (
        "the model is unavailable",
        "The model is temporarily unavailable; retry later or switch to another model.",
    ),
    Code.SERVER_ERROR: (
        "upstream server error",
        "The upstream failed; check its status and logs; it is not a network-path problem.",
    ),
    Code.BAD_REQUEST: (
        "the upstream rejected the request",
        "Check the probe's model name and body against the API.",
    ),
    Code.UNEXPECTED_STATUS: (
        "unexpected HTTP status",
        "Check the probe's expected status against what the endpoint returns.",
    ),
    Code.BODY_MISMATCH: (
        "the response body does not match the expected pattern",
        "Check the probe's expect_body against what the endpoint returns.",
    ),
    Code.STREAM_ERROR_FRAME: (
        "an error frame arrived inside a 200 stream",
        "The request was accepted but failed mid-stream; read the frame's code and message.",
    ),
    Code.STREAM_STALLED: (
        "the stream stopped sending frames",
        "The upstream stalled mid-stream; check the service's health and any proxy timeouts.",
    ),
    Code.READ_TIMEOUT: (
        "no response before the timeout",
        "The connection opened but the upstream did not answer in time: check the service's load and "
        "instances, or raise the probe timeout.",
    ),
    Code.PROTOCOL_ERROR: (
        "the upstream broke the HTTP protocol",
        "Check that the port speaks {scheme} (80 for http, 443 for https).",
    ),
    Code.REQUEST_HEADER_INVALID: (
        "a request header could not be sent",
        "A header value holds a line break or another character HTTP forbids; it comes from the credential "
        "(a trailing newline from `echo key >file` or a secret UI; a DashScope key or EAS token is one line "
        "of ASCII) or from the probe's headers: fix the value where it is stored.",
    ),
    Code.SLOW: (
        "slower than the latency objective",
        "Working, but slow: check the model's load and the network path.",
    ),
    Code.ZONES_DOWN: (
        "some of the endpoint's addresses fail",
        "One zone's endpoint ENI (or instance) is failing while others answer; check that zone's vSwitch, "
        "the endpoint's zone status, and that the security group covers every zone.",
    ),
    Code.CREDENTIAL_UNAVAILABLE: (
        "the credential could not be obtained",
        "Fix the credential reference named in the message.",
    ),
    Code.EAS_SERVICE_NOT_RUNNING: (
        "the EAS service is not running",
        "Start the service or wait for its instances to be Ready.",
    ),
    Code.PROBER_OVERLOADED: (
        "the prober itself could not keep up, so this timeout says nothing about the endpoint",
        "The probe function was too busy to run its own timers: probe fewer targets per round (split them "
        "across functions or timer events), give the function more memory/CPU, or lower `concurrency`.",
    ),
    Code.PROBER_ERROR: (
        "the prober itself failed (a vpcprobe bug), so this says nothing about the endpoint",
        "This is a bug in vpcprobe, not a fault of the endpoint: the `probe_crashed` log line names the error. "
        "`vpcprobe check --target NAME` reproduces it; report it with that line. Alerts for the target wait "
        "until it can be judged again.",
    ),
}
