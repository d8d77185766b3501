"""What the fuzz properties draw from: values YAML and JSON can hold, config-shaped documents, endpoint
URLs and timer expressions built from the pieces that matter to their parsers, and garbage."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

# Messages are bounded: a problem quotes excerpts (60 characters of a value, 200 of a URL), its file and
# field path; a whole error lists at most 100 problems.
MAX_MESSAGE_CHARS = 1000

REGIONS = ["ap-southeast-1", "cn-beijing", "cn-hongkong", "us-east-1", "cn-hangzhou", "eu-central-1", "x"]
ZONES = ["UTC", "Asia/Shanghai", "Europe/Berlin", "America/Los_Angeles", "Etc/GMT+12", "Etc/GMT-14"]

# Scalars YAML reads: edge numbers, dates, times, durations, text with controls and non-ASCII.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["5s", "500ms", "2m", "1h", "0", "-1s", "1e400h", "99999999999999h", "0.0000001ms", "9" * 30]),
    st.sampled_from(["02:00", "24:00", "2026-12-01T02:00", "9999-12-31T23:59", "0001-01-01T00:00", "13:61"]),
    st.sampled_from(REGIONS + ZONES + ["A" * 300, "../../etc/passwd", "Asia/Shanghai\x00", ""]),
    st.sampled_from(["\ud800", "x\udfff", "中文", "\xff\xfe"]),  # a lone surrogate: what YAML reads from "\ud800"
    st.just("Z" * 20_000),  # every message quotes an excerpt of it, never all of it
    st.dates(),
    st.datetimes(),
)

# Text a person pastes that passes a type check but not the wire: a lone surrogate (YAML's "\ud800"),
# non-Latin-1 (no HTTP header carries it), line breaks and NUL (header injection), an empty label.
awkward_text = st.one_of(
    st.sampled_from(["\ud800", "x\udfff", "中文", "é", "a\r\nX-Injected: 1", "\x00", "", " ", "a..b", "/a b"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2),
)


def values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Nested mappings and lists of scalars, like any YAML document."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.just("K" * 20_000)), inner, max_size=4
            ),
        ),
        max_leaves=max_leaves,
    )


# ------------------------------------------------------------------ endpoint URLs


def _label() -> st.SearchStrategy[str]:
    return st.one_of(
        st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True),
        st.sampled_from(["a_b", "", "x" * 64, "ünï", "-", "ep-abc123"]),
    )


hosts = st.one_of(
    st.builds(lambda e, r: f"ep-{e}.dashscope.{r}.privatelink.aliyuncs.com", _label(), st.sampled_from(REGIONS)),
    st.builds(lambda r: f"vpc-{r}.dashscope.aliyuncs.com", st.sampled_from(REGIONS)),
    st.sampled_from(["dashscope.aliyuncs.com", "dashscope-intl.aliyuncs.com", "ws1.cn-beijing.maas.aliyuncs.com"]),
    st.builds(
        lambda uid, vpc, r: f"{uid}.{vpc}{r}.pai-eas.aliyuncs.com",
        st.from_regex(r"[0-9]{1,12}", fullmatch=True),
        st.sampled_from(["vpc.", ""]),
        st.sampled_from(REGIONS),
    ),
    st.builds(
        lambda g, uid, r: f"gw-{g}-{uid}-vpc.{r}.pai-eas.aliyuncs.com",
        _label(),
        st.from_regex(r"[0-9]{1,12}", fullmatch=True),
        st.sampled_from(REGIONS),
    ),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
    st.lists(_label(), min_size=1, max_size=6).map(".".join),
    st.text(max_size=40),
)
segments = st.one_of(
    st.sampled_from(["api", "predict", "v1", "compatible-mode", "chat", "completions", "models", "svc", "g.s"]),
    st.text(alphabet=string.printable, max_size=10),
)
paths = st.lists(segments, max_size=7).map(lambda parts: "/" + "/".join(parts) if parts else "")
ports = st.one_of(st.just(""), st.integers(min_value=-5, max_value=70000).map(lambda p: f":{p}"), st.just(":x"))
urls = st.one_of(
    st.builds(
        lambda scheme, host, port, path, tail: f"{scheme}{host}{port}{path}{tail}",
        st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "http:/", "//"]),
        hosts,
        ports,
        paths,
        st.sampled_from(["", "", "", "?a=b", "#f", "/", " "]),
    ),
    st.text(max_size=60),
)

# ------------------------------------------------------------------ config documents

KINDS = st.sampled_from(["dashscope", "eas", "other"])
TARGET_FIELDS = {
    "name": st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), scalars),
    "kind": st.one_of(KINDS, scalars),
    "endpoint": st.one_of(urls, scalars),
    "credential": st.one_of(
        st.sampled_from(["env:KEY", "kms:secret@ACSCurrent", "eas:ap-southeast-1/svc", "sk-inline", "env:"]), scalars
    ),
    "region": st.one_of(st.sampled_from(REGIONS), scalars),
    "endpoint_id": st.one_of(_label(), scalars),
    "domain": st.one_of(st.sampled_from(["default", "custom", "public"]), scalars),
    "api": st.one_of(st.sampled_from(["compatible", "native"]), scalars),
    "service": st.one_of(st.sampled_from(["svc", "g.s", "v1", "a b"]), scalars),
    "api_path": st.one_of(paths, scalars),
    "uid": st.one_of(st.from_regex(r"[0-9]{1,10}", fullmatch=True), scalars),
    "gateway": st.one_of(_label(), scalars),
    "instance": st.one_of(st.sampled_from(["10.0.0.1:8000", "10.0.0.1", "[::1]:80", "h:99999"]), scalars),
    "network": st.one_of(st.sampled_from(["vpc", "public"]), scalars),
    "auth": st.one_of(st.sampled_from(["raw", "bearer"]), scalars),
    "workspace": scalars,
    "ca_bundle": st.one_of(st.sampled_from(["/etc/hostname", "/" + "c" * 5000, "/nonexistent"]), scalars),
    "tls_verify": scalars,
    "enabled": scalars,
}
PROBE_FIELDS = {
    "mode": st.one_of(st.sampled_from(["models", "chat", "http"]), scalars),
    "timeout": scalars,
    "retries": scalars,
    "retry_delay": scalars,
    "latency_slo": scalars,
    "model": scalars,
    "stream": scalars,
    "method": st.one_of(st.sampled_from(["GET", "post", "DELETE"]), scalars),
    "path": st.one_of(paths, scalars),
    "body": values(),
    "headers": st.one_of(st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), scalars, max_size=3), scalars),
    "expect_status": st.one_of(st.lists(st.integers(0, 1000), max_size=3), scalars),
    "expect_body": st.one_of(st.sampled_from(["(" * 200 + ")" * 200, "[", "a{1,99999999999}", "ok"]), scalars),
    "cert_min_days": scalars,
}


def _some_of(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


probe_blocks = _some_of(PROBE_FIELDS)
targets = st.one_of(
    st.builds(lambda t, p: {**t, "probe": p}, _some_of(TARGET_FIELDS), probe_blocks),
    _some_of(TARGET_FIELDS),
    values(4),
)
WINDOW_FIELDS = {
    "name": scalars,
    "start": scalars,
    "end": scalars,
    "duration": scalars,
    "timezone": scalars,
    "every": st.one_of(st.lists(st.sampled_from(["mon", "Tue", "sunday", "x"]), max_size=3), scalars),
    "targets": st.one_of(st.lists(st.text(max_size=5), max_size=2), scalars),
}
ALERT_FIELDS = {
    "failure_threshold": scalars,
    "success_threshold": scalars,
    "repeat_interval": scalars,
    "degraded": scalars,
    "timezone": scalars,
    "status_page_url": scalars,
    "channels": st.one_of(
        st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=5), "type": st.sampled_from(["console", "x"])}), max_size=2
        ),
        values(4),
    ),
}
documents = _some_of(
    {
        "region": st.one_of(st.sampled_from(REGIONS), scalars),
        "concurrency": scalars,
        "defaults": st.one_of(probe_blocks, scalars),
        "resolve": st.one_of(
            st.dictionaries(st.one_of(hosts, scalars), st.one_of(st.ip_addresses().map(str), scalars), max_size=2),
            scalars,
        ),
        "targets": st.one_of(st.lists(targets, min_size=1, max_size=3), scalars),
        "cloud": st.one_of(values(6), _some_of({"kms_endpoint": urls, "timeout": scalars, "retries": scalars})),
        "alerts": st.one_of(_some_of(ALERT_FIELDS), scalars),
        "maintenance": st.one_of(st.lists(_some_of(WINDOW_FIELDS), max_size=2), scalars),
        "state": values(4),
        "unknown_field": scalars,
    }
)

# YAML text from the characters its grammar turns on, so anchors, aliases, tags, flow and block nesting
# and multi-documents come up often.
yaml_text = st.text(alphabet=st.sampled_from(list("{}[]&*!:,-?|>'\"#%@`~ \n\t.0123456789aebxyz<=") + ["\x00", "é"]))

# ------------------------------------------------------------------ FC events

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=10,
)
target_lists = st.one_of(st.lists(st.text(max_size=70), max_size=4), json_values)

# ------------------------------------------------------------------ timer expressions

_CRON_ATOMS = st.one_of(
    st.sampled_from(["*", "?", "0", "59", "60", "31", "32", "MON", "jan", "FOO", "L", "W", "#", ""]),
    st.integers(min_value=-5, max_value=10**30).map(str),
)


def _cron_part() -> st.SearchStrategy[str]:
    return st.builds(
        lambda a, b, step: f"{a}{b}{step}",
        _CRON_ATOMS,
        st.one_of(st.just(""), _CRON_ATOMS.map(lambda x: f"-{x}")),
        st.one_of(st.just(""), st.integers(min_value=-1, max_value=10**20).map(lambda s: f"/{s}")),
    )


cron_fields = st.lists(st.lists(_cron_part(), min_size=1, max_size=3).map(",".join), min_size=4, max_size=7)
durations = st.builds(
    lambda parts: "".join(parts),
    st.lists(
        st.builds(lambda n, u: f"{n}{u}", st.integers(min_value=0, max_value=10**40), st.sampled_from("hms")),
        max_size=3,
    ),
)
schedules = st.one_of(
    st.builds(
        lambda tz, fields: f"{tz}{' '.join(fields)}",
        st.one_of(st.just(""), st.sampled_from(ZONES + ["A" * 300, "Nowhere/City", ""]).map(lambda z: f"CRON_TZ={z} ")),
        cron_fields,
    ),
    st.builds(lambda tz, d: f"{tz}@every {d}", st.sampled_from(["", "CRON_TZ=UTC "]), durations),
    st.text(alphabet=st.sampled_from(list("*?/-, @0123456789hmsCRON_TZ=every")), max_size=40),
    st.text(max_size=40),
)
