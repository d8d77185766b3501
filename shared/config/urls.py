"""Endpoint URL building and the seed documents' rules about them.

Every private path has a URL form that is easy to get subtly wrong (https on the HTTP-only default
PrivateLink domain, an underscore in a PrivateZone name, an EAS URL without /api/predict/<service>).
These checks run at config load, so a wrong URL is a config error before any probe is sent.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.errors import VpcprobeError, clip, excerpt

# Regions where Model Studio offers PrivateLink (seed, Mar 2026; a later revision adds Hong Kong).
PRIVATELINK_REGIONS = {
    "ap-southeast-1": "Singapore",
    "cn-beijing": "China (Beijing)",
    "cn-hongkong": "China (Hong Kong)",
}
# Regions the seed says private access is not supported in.
PRIVATELINK_UNSUPPORTED = {"us-east-1": "US (Virginia)"}

DASHSCOPE_PUBLIC = {
    "cn-beijing": "https://dashscope.aliyuncs.com",
    "ap-southeast-1": "https://dashscope-intl.aliyuncs.com",
    "us-east-1": "https://dashscope-us.aliyuncs.com",
    "cn-hongkong": "https://cn-hongkong.dashscope.aliyuncs.com",
}
DASHSCOPE_API_PREFIX = {"compatible": "/compatible-mode/v1", "native": "/api/v1"}

# Forms: the shape of endpoint a URL is, which decides scheme rules and whether it must be private.
PRIVATE_FORMS = {"privatelink-default", "privatelink-custom", "eas-shared-vpc", "eas-dedicated-vpc"}

_RE_PL_DEFAULT = re.compile(r"^ep-[a-z0-9-]+\.dashscope\.([a-z0-9-]+)\.privatelink\.aliyuncs\.com\Z")
_RE_PL_CUSTOM = re.compile(r"^vpc-([a-z0-9-]+)\.dashscope\.aliyuncs\.com\Z")
_RE_WORKSPACE = re.compile(r"^[a-z0-9-]+\.([a-z0-9-]+)\.maas\.aliyuncs\.com\Z")
_RE_EAS_DEDICATED = re.compile(r"^gw-[a-z0-9]+-\d+(-vpc)?\.([a-z0-9-]+)\.pai-eas\.aliyuncs\.com\Z")
_RE_EAS_SHARED = re.compile(r"^\d+\.(vpc\.)?([a-z0-9-]+)\.pai-eas\.aliyuncs\.com\Z")
_RE_HOST_OK = re.compile(r"^[A-Za-z0-9.-]+\Z")
_RE_SERVICE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?\Z")
# A request path: visible ASCII only, as spaces or CR/LF would break the request line (\Z, not $: `$` also
# matches before a final newline, and a YAML block scalar ends in one).
RE_REQUEST_PATH = re.compile(r"^/[!-~]{0,8191}\Z")


class UrlError(VpcprobeError, ValueError):
    """A URL that cannot work; the message says why and what to use instead."""


class MalformedUrlError(UrlError):
    """A URL no request can be built from (not a URL, a bad host name or port, a doubled path segment),
    as opposed to one that breaks a documented rule: `doctor` probes the latter as given to show the
    rule's effect, but refuses the former as bad input."""


def _q(value: str) -> str:
    """A URL or name quoted into a message, cut short: the input may be a megabyte."""
    return excerpt(value, 200)


@dataclass(frozen=True)
class Endpoint:
    """A target's base URL, classified; request URLs are built with `url_for`."""

    kind: str  # dashscope | eas
    form: str
    scheme: str
    host: str
    port: int
    base_path: str  # "" or "/api/predict/<service>" for EAS gateways
    region: str | None = None
    service: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def base_url(self) -> str:
        default = 443 if self.scheme == "https" else 80
        netloc = self.host if self.port == default else f"{self.host}:{self.port}"
        if ":" in self.host and not self.host.startswith("["):
            netloc = f"[{self.host}]" if self.port == default else f"[{self.host}]:{self.port}"
        return f"{self.scheme}://{netloc}{self.base_path}"

    @property
    def expect_private(self) -> bool:
        """Whether the name should resolve to private addresses (the whole point of the private path)."""
        return self.form in PRIVATE_FORMS or self.form == "eas-instance"

    def url_for(self, path: str) -> str:
        return join_url(self.base_url, path)


def join_url(base: str, path: str) -> str:
    """Join endpoint + API path the way the EAS doc says: <EAS_ENDPOINT> + API path, exactly one slash."""
    if not path:
        return base
    url = base.rstrip("/") + "/" + path.lstrip("/")
    check_doubled_segments(urlsplit(url).path, url)
    return url


def check_doubled_segments(path: str, url: str) -> None:
    segments = [s for s in path.split("/") if s]
    for a, b in zip(segments, segments[1:]):
        if a == b and a in {"v1", "api", "predict", "compatible-mode", "chat", "completions"}:
            raise MalformedUrlError(
                f"{_q(url)}: the path repeats '/{a}/{b}'; the base URL already ends with '/{a}', "
                "so the API path must not start with it again"
            )


def check_request_path(path: str, url: str) -> None:
    """A path the request line can carry as typed (a browser would percent-encode the rest)."""
    if not RE_REQUEST_PATH.match(path):
        raise MalformedUrlError(
            f"{_q(url)}: the path must be visible ASCII, at most 8 KiB: percent-encode spaces and other "
            "characters (a space is %20)"
        )


def check_host(host: str) -> None:
    """Seed FAQ 3: private DNS names may hold letters, digits and hyphens only. A name no resolver can be
    asked about is refused first (MalformedUrlError), the underscore rule after it."""
    check_dns_name(host)
    if "_" in host:
        raise UrlError(
            f"host {_q(host)} contains an underscore: PrivateZone host records and domain names may "
            "only contain letters, digits and hyphens (Model Studio PrivateLink FAQ); rename the record, "
            f"e.g. '{host.replace('_', '-')}'"
        )


def check_dns_name(host: str) -> None:
    """A name the resolver can be asked about at all (the idna codec refuses empty or long labels)."""
    if not _RE_HOST_OK.match(host.replace("_", "-")):
        raise MalformedUrlError(f"host {_q(host)} is not a valid DNS name (letters, digits, hyphens and dots only)")
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or any(not 0 < len(label) <= 63 for label in labels):
        raise MalformedUrlError(
            f"host {_q(host)} is not a valid DNS name: at most 253 characters, dot-separated labels of 1-63"
        )


def _split(url: str) -> tuple[str, str, int, str]:
    if "://" not in url:
        raise MalformedUrlError(
            f"{_q(url)} is not a URL: give scheme and host, e.g. http://ep-xxx.dashscope.<region>.privatelink.aliyuncs.com"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise MalformedUrlError(f"{_q(url)} is not a valid URL: {clip(str(exc))}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise MalformedUrlError(f"{_q(url)}: scheme must be http or https, not {excerpt(parts.scheme)}")
    try:
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as exc:
        raise MalformedUrlError(f"{_q(url)}: {clip(str(exc))}") from None
    if port == 0:
        raise MalformedUrlError(f"{_q(url)}: port 0 is no server's port; give the endpoint's (1-65535) or none")
    port = port or (443 if scheme == "https" else 80)
    if not host:
        raise MalformedUrlError(f"{_q(url)} has no host")
    if not is_ip(host):
        check_host(host)
    if parts.query or parts.fragment:
        raise UrlError(f"{_q(url)}: an endpoint URL takes no query string or fragment")
    return scheme, host, port, parts.path.rstrip("/")


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _privatelink_region_rules(region: str, warnings: list[str]) -> None:
    if region in PRIVATELINK_UNSUPPORTED:
        raise UrlError(
            f"Model Studio private access (PrivateLink) is not supported in {PRIVATELINK_UNSUPPORTED[region]} "
            f"({_q(region)}); use a supported region ({', '.join(PRIVATELINK_REGIONS)}) or the public endpoint"
        )
    if region not in PRIVATELINK_REGIONS:
        warnings.append(
            f"region {_q(region)} is not in the documented PrivateLink regions ({', '.join(PRIVATELINK_REGIONS)}); "
            "check that com.aliyuncs.dashscope is offered there"
        )


def dashscope_endpoint(
    url: str | None = None,
    *,
    region: str | None = None,
    endpoint_id: str | None = None,
    domain: str | None = None,
) -> tuple[Endpoint, str | None]:
    """Classify a Model Studio base URL, or build one from region + endpoint_id / domain.

    Returns the endpoint and the API mode implied by a pasted base_url path ("compatible",
    "native" or None), so `.../compatible-mode/v1` copied from an SDK example still works.
    """
    if url is None:
        url = _build_dashscope_url(region, endpoint_id, domain)
    scheme, host, port, path = _split(url)
    warnings: list[str] = []
    implied_mode = None
    for mode, prefix in DASHSCOPE_API_PREFIX.items():
        if path == prefix:
            implied_mode, path = mode, ""
    if path:
        raise UrlError(
            f"{_q(url)}: a Model Studio base URL ends at the host (or at /compatible-mode/v1 or /api/v1); "
            f"{_q(path)} belongs in the probe path, not the endpoint"
        )
    found_region = None
    if m := _RE_PL_DEFAULT.match(host):
        form, found_region = "privatelink-default", m.group(1)
        if scheme == "https":
            raise UrlError(
                f"{_q(url)}: the endpoint's default domain supports only HTTP; use http://{host} "
                f"or the custom domain https://vpc-{found_region}.dashscope.aliyuncs.com"
            )
        _privatelink_region_rules(found_region, warnings)
    elif m := _RE_PL_CUSTOM.match(host):
        form, found_region = "privatelink-custom", m.group(1)
        _privatelink_region_rules(found_region, warnings)
        warnings.append(
            "the custom domain resolves only inside the endpoint's own VPC unless a PrivateZone CNAME "
            "points it at the default domain"
        )
    elif host in {urlsplit(u).hostname for u in DASHSCOPE_PUBLIC.values()}:
        form = "dashscope-public"
        found_region = next(r for r, u in DASHSCOPE_PUBLIC.items() if urlsplit(u).hostname == host)
    elif m := _RE_WORKSPACE.match(host):
        form, found_region = "dashscope-public", m.group(1)
    else:
        form = "custom"
    if region and found_region and region != found_region:
        raise UrlError(f"{_q(url)} is in region {found_region} but the target says region {_q(region)}")
    return (
        Endpoint("dashscope", form, scheme, host, port, "", found_region or region, None, tuple(warnings)),
        implied_mode,
    )


def _build_dashscope_url(region: str | None, endpoint_id: str | None, domain: str | None) -> str:
    if not region:
        raise UrlError("give either 'endpoint' (a URL) or 'region' with 'endpoint_id' or 'domain'")
    domain = domain or ("default" if endpoint_id else None)
    if domain == "default":
        if not endpoint_id:
            raise UrlError("domain 'default' needs 'endpoint_id' (ep-...) from the endpoint's details page")
        eid = endpoint_id if endpoint_id.startswith("ep-") else f"ep-{endpoint_id}"
        return f"http://{eid}.dashscope.{region}.privatelink.aliyuncs.com"
    if domain == "custom":
        return f"https://vpc-{region}.dashscope.aliyuncs.com"
    if domain == "public":
        if region not in DASHSCOPE_PUBLIC:
            raise UrlError(
                f"no public Model Studio endpoint known for region {_q(region)} ({', '.join(DASHSCOPE_PUBLIC)})"
            )
        return DASHSCOPE_PUBLIC[region]
    raise UrlError(f"domain must be one of default, custom, public (got {_q(domain)})")


def eas_endpoint(
    url: str | None = None,
    *,
    service: str | None = None,
    region: str | None = None,
    uid: str | None = None,
    network: str = "vpc",
    gateway: str | None = None,
    instance: str | None = None,
    function_region: str | None = None,
) -> tuple[Endpoint, str | None]:
    """Classify or build a PAI-EAS endpoint; returns it and any API path found after the service name.

    Gateway forms must carry /api/predict/<service>; an instance ip:port is the service itself.
    """
    if service is not None and not _RE_SERVICE.match(service):
        raise UrlError(f"service {_q(service)} is not an EAS service name (group services are 'group.service')")
    if url is None:
        url = _build_eas_url(region, uid, network, gateway, instance)
    scheme, host, port, path = _split(url)
    check_doubled_segments(path, url)  # a pasted .../v1/v1/chat/completions, whichever probe mode uses it
    warnings: list[str] = []
    found_region = None
    if m := _RE_EAS_DEDICATED.match(host):
        form, found_region = ("eas-dedicated-vpc" if m.group(1) else "eas-dedicated"), m.group(2)
    elif m := _RE_EAS_SHARED.match(host):
        form, found_region = ("eas-shared-vpc" if m.group(1) else "eas-shared-public"), m.group(2)
    elif is_ip(host):
        form = "eas-instance"
        warnings.append("an instance ip:port changes when the service restarts or updates; prefer a dedicated gateway")
    else:
        form = "custom"
    if region and found_region and region != found_region:
        raise UrlError(f"{_q(url)} is in region {found_region} but the target says region {_q(region)}")

    api_path = None
    base_path = ""
    if form == "eas-instance":
        if path:
            api_path = path
    else:
        base_path, svc, api_path = _split_predict_path(url, path, service, required=form != "custom")
        service = svc or service
    if form == "eas-shared-vpc" and function_region and found_region != function_region:
        warnings.append(
            f"the shared gateway's VPC address works only from the same region ({found_region}), even across "
            f"connected VPCs, but the function runs in {function_region}: use a dedicated gateway "
            "or the instance ip:port"
        )
    ep = Endpoint("eas", form, scheme, host, port, base_path, found_region or region, service, tuple(warnings))
    return ep, api_path


def _split_predict_path(
    url: str, path: str, service: str | None, *, required: bool
) -> tuple[str, str | None, str | None]:
    segments = [s for s in path.split("/") if s]
    if segments[:2] == ["api", "predict"] and len(segments) >= 3:
        svc = segments[2]
        if not _RE_SERVICE.match(svc):
            raise UrlError(f"{_q(url)}: {_q(svc)} is not an EAS service name (group services are 'group.service')")
        if service and svc != service:
            raise UrlError(f"{_q(url)} names service {_q(svc)} but the target says service {_q(service)}")
        rest = "/" + "/".join(segments[3:]) if len(segments) > 3 else None
        return f"/api/predict/{svc}", svc, rest
    if segments:
        if segments[:2] == ["api", "predict"]:
            raise UrlError(f"{_q(url)}: /api/predict/ must be followed by the service name")
        raise UrlError(
            f"{_q(url)}: EAS gateway URLs are <endpoint>/api/predict/<service> + API path; {_q(path)} lacks "
            "/api/predict/<service> (a wrong path is the most common cause of 404)"
        )
    if service:
        return f"/api/predict/{service}", service, None
    if required:
        raise UrlError(f"{_q(url)}: say which service: add 'service' or end the URL with /api/predict/<service>")
    return "", None, None


def _build_eas_url(region: str | None, uid: str | None, network: str, gateway: str | None, instance: str | None) -> str:
    if instance:
        host, _, port = instance.rpartition(":")
        if not host or not port.isdigit() or not is_ip(host.strip("[]")):
            raise UrlError(f"instance {_q(instance)} must be ip:port (the instance address shown in the EAS console)")
        return f"http://{instance}"
    if not (region and uid):
        raise UrlError("give either 'endpoint' (a URL) or 'region' and 'uid' (with 'gateway' for a dedicated gateway)")
    if network not in ("vpc", "public"):
        raise UrlError(f"network must be 'vpc' or 'public' (got {_q(network)})")
    if gateway:
        gid = gateway.removeprefix("gw-")
        suffix = "-vpc" if network == "vpc" else ""
        return f"http://gw-{gid}-{uid}{suffix}.{region}.pai-eas.aliyuncs.com"
    middle = "vpc." if network == "vpc" else ""
    return f"http://{uid}.{middle}{region}.pai-eas.aliyuncs.com"
