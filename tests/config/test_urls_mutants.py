"""The URL rules every endpoint goes through, at each boundary, with the exact message and error class.

Pure functions, so table-driven: a DNS name's labels (1-63) and length (253), ports (0, 1, 65535,
65536), IPv4/IPv6 literals, the doubled /v1/v1 segment, the request path (visible ASCII, 8 KiB), and
the 200-character cut of a quoted input. Expected messages are written out here, not rebuilt with the
module's helpers, so a changed word or quote fails.
"""

from __future__ import annotations

import pytest

from shared.config import urls
from shared.config.reader import Reader
from shared.config.targets import ProbeSettings, read_target
from shared.config.urls import (
    Endpoint,
    MalformedUrlError,
    UrlError,
    check_dns_name,
    check_host,
    check_request_path,
    is_ip,
    join_url,
)

LABEL_63 = "a" * 63
NAME_253 = ".".join([LABEL_63, LABEL_63, LABEL_63, "b" * 61])  # 63 * 3 + 61 + 3 dots
NAME_254 = ".".join([LABEL_63, LABEL_63, LABEL_63, "b" * 62])
LENGTH_RULE = "is not a valid DNS name: at most 253 characters, dot-separated labels of 1-63"
CHARACTER_RULE = "is not a valid DNS name (letters, digits, hyphens and dots only)"
NOT_A_URL_HINT = "give scheme and host, e.g. http://ep-xxx.dashscope.<region>.privatelink.aliyuncs.com"
REQUEST_PATH_RULE = (
    "the path must be visible ASCII, at most 8 KiB: percent-encode spaces and other characters (a space is %20)"
)


def _quoted(text: str) -> str:
    """How a message quotes an input: repr of its first 200 characters, an ellipsis if there were more."""
    return repr(text[:200]) + ("\u2026" if len(text) > 200 else "")


def _refusal(call, *args) -> tuple[type, str]:
    with pytest.raises(UrlError) as caught:
        call(*args)
    return type(caught.value), str(caught.value)


# --- DNS names -------------------------------------------------------------------------------------------


def test_the_boundary_names_are_as_long_as_they_claim():
    assert (len(LABEL_63), len(NAME_253), len(NAME_254)) == (63, 253, 254)


@pytest.mark.parametrize(
    "host",
    [
        "x.example.com",  # a one-character label
        f"{LABEL_63}.example.com",  # a 63-character label first
        f"svc.{LABEL_63}",  # and last
        NAME_253,
        "ep-abc.dashscope.cn-beijing.privatelink.aliyuncs.com.",  # a fully qualified name's final dot
        "Vpc-CN-Beijing.dashscope.aliyuncs.com",
        "localhost",
    ],
)
def test_a_name_within_the_dns_limits_is_accepted(host):
    """The limits are inclusive: 63 characters a label, 253 a name, and a trailing dot ends the name."""
    assert check_dns_name(host) is None
    assert check_host(host) is None


@pytest.mark.parametrize(
    "host",
    [
        "a" * 64 + ".example.com",  # a 64-character label first
        "svc." + "a" * 64,  # and last
        NAME_254,
        "a..example.com",  # an empty label inside
        ".example.com",  # a leading dot is an empty first label
        "example.com..",  # two final dots: an empty label before the last
        ".",
    ],
)
def test_a_name_past_the_dns_limits_is_malformed(host):
    """One past each limit, and an empty label, is a name no resolver can be asked about."""
    assert _refusal(check_dns_name, host) == (MalformedUrlError, f"host {_quoted(host)} {LENGTH_RULE}")
    assert _refusal(check_host, host) == (MalformedUrlError, f"host {_quoted(host)} {LENGTH_RULE}")


@pytest.mark.parametrize("host", ["bad host", "a!b.example.com", "ex*ample.com", "caf\u00e9.example.com", "h/x"])
def test_a_name_with_other_characters_is_malformed(host):
    assert _refusal(check_dns_name, host) == (MalformedUrlError, f"host {host!r} {CHARACTER_RULE}")


def test_an_underscore_is_left_to_the_underscore_rule():
    """check_dns_name lets an underscore through (a resolver takes it); check_host refuses it with the FAQ's
    reason and the name to use instead, every underscore replaced."""
    host = "test_for_dns_wrong.my_zone.aliyuncs.com"
    assert check_dns_name(host) is None
    assert _refusal(check_host, host) == (
        UrlError,
        "host 'test_for_dns_wrong.my_zone.aliyuncs.com' contains an underscore: PrivateZone host records and "
        "domain names may only contain letters, digits and hyphens (Model Studio PrivateLink FAQ); rename the "
        "record, e.g. 'test-for-dns-wrong.my-zone.aliyuncs.com'",
    )


def test_a_malformed_name_with_an_underscore_is_malformed_first():
    host = "my_host..example.com"
    assert _refusal(check_host, host) == (MalformedUrlError, f"host '{host}' {LENGTH_RULE}")


# --- IP literals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host,expected",
    [
        ("10.0.3.7", True),
        ("0.0.0.0", True),
        ("255.255.255.255", True),
        ("::1", True),
        ("fd00::7", True),
        ("256.0.0.1", False),
        ("10.0.3", False),
        ("10.0.3.7:8000", False),
        ("[::1]", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_ip(host, expected):
    assert is_ip(host) is expected


# --- splitting an endpoint URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url,expected",
    [
        (
            "http://ep-abc.dashscope.cn-beijing.privatelink.aliyuncs.com",
            ("http", "ep-abc.dashscope.cn-beijing.privatelink.aliyuncs.com", 80, ""),
        ),
        ("https://vpc-cn-beijing.dashscope.aliyuncs.com/", ("https", "vpc-cn-beijing.dashscope.aliyuncs.com", 443, "")),
        ("HTTPS://GW.Example.COM:8443/api/predict/svc/", ("https", "gw.example.com", 8443, "/api/predict/svc")),
        ("Http://gw.example.com/api//", ("http", "gw.example.com", 80, "/api")),
        ("http://gw.example.com/api/predict/llmX", ("http", "gw.example.com", 80, "/api/predict/llmX")),
        ("http://gw.example.com:1", ("http", "gw.example.com", 1, "")),
        ("https://gw.example.com:65535", ("https", "gw.example.com", 65535, "")),
        ("https://gw.example.com:80", ("https", "gw.example.com", 80, "")),
        ("http://gw.example.com:443", ("http", "gw.example.com", 443, "")),
        ("http://gw.example.com./v1", ("http", "gw.example.com.", 80, "/v1")),
        (f"http://{NAME_253}/", ("http", NAME_253, 80, "")),
        ("http://10.0.3.7:8000/v1/chat/completions", ("http", "10.0.3.7", 8000, "/v1/chat/completions")),
        ("http://[fd00::7]:8000/v1", ("http", "fd00::7", 8000, "/v1")),
        ("https://[::1]", ("https", "::1", 443, "")),
        ("http://[FD00::A]/", ("http", "fd00::a", 80, "")),
    ],
)
def test_an_endpoint_url_splits_into_scheme_host_port_and_path(url, expected):
    """Scheme and host in lower case, the scheme's default port when none is given, the path without its
    final slashes; an IPv6 literal is taken without its brackets and never checked as a DNS name."""
    assert urls._split(url) == expected


@pytest.mark.parametrize(
    "url,error,message",
    [
        (
            "ep-abc.dashscope.cn-beijing.privatelink.aliyuncs.com",
            MalformedUrlError,
            f"'ep-abc.dashscope.cn-beijing.privatelink.aliyuncs.com' is not a URL: {NOT_A_URL_HINT}",
        ),
        ("http://[::1", MalformedUrlError, "'http://[::1' is not a valid URL: Invalid IPv6 URL"),
        (
            "ftp://dashscope.aliyuncs.com",
            MalformedUrlError,
            "'ftp://dashscope.aliyuncs.com': scheme must be http or https, not 'ftp'",
        ),
        ("FTP://h.example", MalformedUrlError, "'FTP://h.example': scheme must be http or https, not 'ftp'"),
        ("ws://h.example", MalformedUrlError, "'ws://h.example': scheme must be http or https, not 'ws'"),
        ("http://h.example:65536", MalformedUrlError, "'http://h.example:65536': Port out of range 0-65535"),
        (
            "http://h.example:eighty",
            MalformedUrlError,
            "'http://h.example:eighty': Port could not be cast to integer value as 'eighty'",
        ),
        (
            "http://h.example:0/",
            MalformedUrlError,
            "'http://h.example:0/': port 0 is no server's port; give the endpoint's (1-65535) or none",
        ),
        (
            "https://h.example:00",
            MalformedUrlError,
            "'https://h.example:00': port 0 is no server's port; give the endpoint's (1-65535) or none",
        ),
        ("http:///v1/models", MalformedUrlError, "'http:///v1/models' has no host"),
        ("http://:8080", MalformedUrlError, "'http://:8080' has no host"),
        ("http://a..example.com/", MalformedUrlError, f"host 'a..example.com' {LENGTH_RULE}"),
        (f"http://{NAME_254}/", MalformedUrlError, f"host '{NAME_254[:200]}'\u2026 {LENGTH_RULE}"),
        (
            "http://Bad_Name.Example.com",
            UrlError,
            "host 'bad_name.example.com' contains an underscore: PrivateZone "
            "host records and domain names may only contain letters, digits and hyphens (Model Studio PrivateLink "
            "FAQ); rename the record, e.g. 'bad-name.example.com'",
        ),
        (
            "http://h.example/?x=1",
            UrlError,
            "'http://h.example/?x=1': an endpoint URL takes no query string or fragment",
        ),
        (
            "http://h.example/#top",
            UrlError,
            "'http://h.example/#top': an endpoint URL takes no query string or fragment",
        ),
        ("http://h.example?a#b", UrlError, "'http://h.example?a#b': an endpoint URL takes no query string or fragment"),
    ],
)
def test_an_endpoint_url_that_cannot_work_is_refused(url, error, message):
    """Each refusal quotes the URL (or host) as given and says why; what no request can be built from is
    malformed, a documented rule broken is a plain UrlError."""
    assert _refusal(urls._split, url) == (error, message)


def test_the_refusals_reach_the_endpoint_builders():
    """dashscope_endpoint and eas_endpoint split through the same rules."""
    assert _refusal(urls.dashscope_endpoint, "http://ep-abc.dashscope.cn-beijing.privatelink.aliyuncs.com:0") == (
        MalformedUrlError,
        "'http://ep-abc.dashscope.cn-beijing.privatelink.aliyuncs.com:0': port 0 is no server's port; give the "
        "endpoint's (1-65535) or none",
    )
    ep, api_path = urls.eas_endpoint("http://[fd00::7]:8000/v1/chat/completions/")
    assert (ep.form, ep.host, ep.port, ep.base_url, api_path) == (
        "eas-instance",
        "fd00::7",
        8000,
        "http://[fd00::7]:8000",
        "/v1/chat/completions",
    )


# --- a quoted input is cut at 200 characters ------------------------------------------------------------


@pytest.mark.parametrize("length", [199, 200])
def test_a_url_of_up_to_200_characters_is_quoted_whole(length):
    url = "ftp://" + "a" * (length - 6)
    assert len(url) == length
    assert _refusal(urls._split, url)[1] == f"'{url}': scheme must be http or https, not 'ftp'"


@pytest.mark.parametrize("length", [201, 5000])
def test_a_longer_url_is_quoted_to_its_first_200_characters(length):
    url = "ftp://" + "a" * (length - 6)
    assert _refusal(urls._split, url)[1] == f"'{url[:200]}'\u2026: scheme must be http or https, not 'ftp'"


# --- joining an endpoint and an API path -----------------------------------------------------------------


@pytest.mark.parametrize(
    "base,path,expected",
    [
        ("http://h/api/predict/svc", "/v1/chat/completions", "http://h/api/predict/svc/v1/chat/completions"),
        ("http://h/api/predict/svc/", "v1/models", "http://h/api/predict/svc/v1/models"),
        ("http://h//", "//v1/models/", "http://h/v1/models/"),
        ("http://h/api/predict/llmX", "/Xv1/models", "http://h/api/predict/llmX/Xv1/models"),
        ("http://h", "", "http://h"),
        ("http://h/", "", "http://h/"),
        ("http://h/api/predict/models", "/models", "http://h/api/predict/models/models"),
        ("http://h/v1", "/chat/v1", "http://h/v1/chat/v1"),
        ("http://v1/v1", "/models", "http://v1/v1/models"),
    ],
)
def test_join_url_puts_exactly_one_slash_between(base, path, expected):
    """Slashes at the seam are folded to one, nothing else of either side changes; an empty path is the
    base itself; a repeated segment outside the API's own words, or not adjacent, is left alone."""
    assert join_url(base, path) == expected


@pytest.mark.parametrize("segment", ["v1", "api", "predict", "compatible-mode", "chat", "completions"])
def test_join_url_refuses_each_api_word_doubled(segment):
    """Each of the API's own path words, repeated at the seam, is the base URL's tail pasted again."""
    base, path = f"http://h/x/{segment}", f"/{segment}/y"
    url = f"http://h/x/{segment}/{segment}/y"
    assert _refusal(join_url, base, path) == (
        MalformedUrlError,
        f"'{url}': the path repeats '/{segment}/{segment}'; the base URL already ends with '/{segment}', so the "
        "API path must not start with it again",
    )


def test_join_url_refuses_a_path_that_is_only_the_doubled_segment():
    assert _refusal(join_url, "http://h", "/v1/v1") == (
        MalformedUrlError,
        "'http://h/v1/v1': the path repeats '/v1/v1'; the base URL already ends with '/v1', so the API path must "
        "not start with it again",
    )


def test_url_for_joins_the_endpoint_base_url_and_the_path():
    ep = Endpoint(
        "eas", "eas-dedicated-vpc", "http", "gw-a-1-vpc.cn-hangzhou.pai-eas.aliyuncs.com", 8080, "/api/predict/llm"
    )
    assert (
        ep.url_for("/v1/models") == "http://gw-a-1-vpc.cn-hangzhou.pai-eas.aliyuncs.com:8080/api/predict/llm/v1/models"
    )
    assert ep.url_for("") == "http://gw-a-1-vpc.cn-hangzhou.pai-eas.aliyuncs.com:8080/api/predict/llm"
    v6 = Endpoint("eas", "eas-instance", "http", "fd00::7", 8000, "")
    assert v6.url_for("v1/models") == "http://[fd00::7]:8000/v1/models"


# --- the request path -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/v1/models", "/api/predict/svc/v1/chat/completions?stream=true", "/!~", "/" + "a" * 8191]
)
def test_a_visible_ascii_path_of_up_to_8_kib_is_a_request_path(path):
    assert check_request_path(path, "http://h" + path) is None


@pytest.mark.parametrize(
    "path",
    ["", "v1/models", "/v1 models", "/v1/\tmodels", "/caf\u00e9", "/v1\x7f", "/v1\r\nHost: x", "/" + "a" * 8192],
)
def test_a_path_the_request_line_cannot_carry_is_refused(path):
    url = "http://h.example" + path
    assert _refusal(check_request_path, path, url) == (MalformedUrlError, f"{_quoted(url)}: {REQUEST_PATH_RULE}")


def test_a_path_ending_in_a_line_break_is_refused():
    """A YAML block scalar (`path: |`) ends in a newline; the request line cannot carry it, so it is a config
    error, not a probe that fails every round."""
    url = "http://h.example/v1/models\n"
    assert _refusal(check_request_path, "/v1/models\n", url) == (
        MalformedUrlError,
        f"'http://h.example/v1/models\\n': {REQUEST_PATH_RULE}",
    )


def _problems(item) -> list[str]:
    problems: list[str] = []
    read_target(Reader(item, "targets[0]", problems, "cfg.yaml"), ProbeSettings(), None)
    return problems


def test_a_config_path_or_service_ending_in_a_line_break_is_a_config_error():
    """The same pattern guards a target's probe path, and the service name the gateway's base path: a YAML
    block scalar's final newline in either is refused at load, not sent on every probe."""
    endpoint = "http://1.vpc.cn-hangzhou.pai-eas.aliyuncs.com"
    target = {"name": "e", "kind": "eas", "endpoint": endpoint, "service": "llm"}
    assert _problems({**target, "probe": {"mode": "http", "path": "/v1/models"}}) == []
    assert _problems({**target, "probe": {"mode": "http", "path": "/v1/models\n"}})[0] == (
        "cfg.yaml: targets[e].probe.path: must start with / and hold no spaces or control characters "
        "(got '/v1/models\\n')"
    )
    assert _problems({**target, "service": "llm\n"}) == [
        "cfg.yaml: targets[e].endpoint: service 'llm\\n' is not an EAS service name (group services are "
        "'group.service')"
    ]
