"""The `gateway:` section of vpcprobe.yaml: who may call, which model goes where, limits and timeouts.

Read by config/load.py in the same pass as every other section (and only when the file has a
`gateway:` section), so a wrong key reference or a route to an unknown target is a config error
naming the field, never a 500 at the first request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.config.reader import Reader
from shared.config.targets import EAS_BODY_LIMIT, Target
from shared.credentials.refs import CredentialRef, parse_ref

# First path segments the gateway serves itself: a target of that name could never be reached.
RESERVED = frozenset({"healthz", "v1", "probe", "status", "status.json", "metrics", "_gw"})
KEY_SCHEMES = ("env", "kms")  # eas: is a service's own token, never a gateway key
FC_SYNC_BODY_LIMIT = 32 * 1024 * 1024  # FC's HTTP trigger refuses larger synchronous bodies (400)
DEFAULT_BODY_LIMITS = {"eas": EAS_BODY_LIMIT, "dashscope": FC_SYNC_BODY_LIMIT}
DEFAULT_PROBE_FUNCTION = "vpcprobe-probe"  # s.yaml's probe function; VPCPROBE_PROBE_FUNCTION overrides (not FC_*:
# FC reserves that prefix for its own variables)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
# What shared.fc.invoke accepts (not imported: config loading must not pull in the FC client):
# an FC 3.0 function name, or SERVICE/NAME of a function in an FC 2.0 service.
_FUNCTION = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_-]{0,127}/)?[A-Za-z_][A-Za-z0-9_$-]{0,127}\Z")
_SIZE = re.compile(r"^(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2, "gb": 1024**3, "gib": 1024**3}


@dataclass(frozen=True)
class GatewayKey:
    """One caller: a name for the logs, the key by reference, and what it may use."""

    name: str
    ref: CredentialRef
    targets: frozenset[str] | None = None  # None = all
    models: frozenset[str] | None = None  # None = all
    rpm: int | None = None  # requests per minute, per gateway instance

    def allows_target(self, target: str) -> bool:
        return self.targets is None or target in self.targets

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True)
class ModelRoute:
    """One place a model name of the OpenAI base URL is served: a target and its model name there."""

    target: str
    model: str


@dataclass(frozen=True)
class GatewaySettings:
    keys: tuple[GatewayKey, ...]
    models: dict[str, tuple[ModelRoute, ...]]  # OpenAI base URL model name -> routes, failover order
    body_limit: dict[str, int]  # target kind -> bytes
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 300.0
    idle_timeout_s: float = 120.0
    state_ttl_s: float = 10.0
    status_public: bool = False
    probe_function: str = DEFAULT_PROBE_FUNCTION  # POST /probe?async=true: NAME (FC 3.0) or SERVICE/NAME (FC 2.0)
    probe_rounds: int = 1  # POST /probe rounds one instance runs at once; more are answered 429


def read_gateway(
    data: dict[str, Any], targets: Sequence[Target], raw_targets: Sequence[Any], problems: list[str], path: str
) -> GatewaySettings | None:
    """Validate the `gateway:` section into `problems`; None when the config has none.

    `targets` are the enabled targets (what routes and keys may name); `raw_targets` the `targets:`
    items as written, whose names must not shadow the gateway's own routes."""
    if "gateway" not in data:
        return None
    _check_reserved_names(raw_targets, problems, path)
    known = {t.name: t for t in targets}
    r = Reader(data.get("gateway"), "gateway", problems, path)
    models = _read_models(r, known)
    keys = _read_keys(r, known, models)
    body_limit = _read_body_limits(Reader(r.get("body_limit"), "gateway.body_limit", problems, path))
    timeouts = Reader(r.get("timeouts"), "gateway.timeouts", problems, path)
    base = GatewaySettings((), {}, {})
    connect = timeouts.seconds("connect", base.connect_timeout_s) or base.connect_timeout_s
    first_byte = timeouts.seconds("first_byte", base.first_byte_timeout_s) or base.first_byte_timeout_s
    idle = timeouts.seconds("idle", base.idle_timeout_s) or base.idle_timeout_s
    timeouts.finish()
    status = Reader(r.get("status"), "gateway.status", problems, path)
    status_public = status.bool("public", base.status_public)
    status.finish()
    state_ttl = r.seconds("state_ttl", base.state_ttl_s) or base.state_ttl_s
    probe_function, probe_rounds = _read_probe(Reader(r.get("probe"), "gateway.probe", problems, path))
    r.finish()
    return GatewaySettings(
        keys=tuple(keys),
        models=models,
        body_limit=body_limit,
        connect_timeout_s=connect,
        first_byte_timeout_s=first_byte,
        idle_timeout_s=idle,
        state_ttl_s=state_ttl,
        status_public=status_public,
        probe_function=probe_function,
        probe_rounds=probe_rounds,
    )


def parse_size(value: Any) -> int | None:
    """Bytes from 1048576, "1MB", "512KB", "32MiB" (binary units: 1MB = 1024*1024); None if not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    m = _SIZE.match(str(value).strip()) if isinstance(value, str) else None
    if not m:
        return None
    size = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower() if m.group(2) else None]
    return size if size > 0 else None


def _check_reserved_names(raw_targets: Sequence[Any], problems: list[str], path: str) -> None:
    for i, raw in enumerate(raw_targets):
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name in RESERVED:
            problems.append(
                f"{path}: targets[{i}].name: '{name}' is a route of the gateway itself "
                f"(/{', /'.join(sorted(RESERVED))}); rename the target"
            )


def _known_list(known: dict[str, Any]) -> str:
    return ", ".join(sorted(known)) or "none"


def _read_models(r: Reader, known: dict[str, Target]) -> dict[str, tuple[ModelRoute, ...]]:
    raw = r.get("models")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        r.error("must map model names to route lists, e.g. qwen-plus: [{target: NAME, model: qwen-plus}]", "models")
        return {}
    models: dict[str, tuple[ModelRoute, ...]] = {}
    for name, routes in raw.items():
        where = f"models.{name}"
        if not isinstance(name, str) or not name.strip():
            r.error(f"model names must be non-empty strings (got {name!r})", "models")
            continue
        if not isinstance(routes, list) or not routes:
            r.error("must be a non-empty list of routes, each {target: NAME, model: NAME_THERE}", where)
            continue
        out = []
        for j, item in enumerate(routes):
            route = Reader(item, f"gateway.{where}[{j}]", r.problems, r.file)
            target = route.str("target", required=True)
            model = route.str("model", name) or name
            route.finish()
            if target is None:
                continue
            if target not in known:
                route.error(f"unknown target '{target}'; configured: {_known_list(known)}", "target")
                continue
            out.append(ModelRoute(target, model))
        if out:
            models[name] = tuple(out)
    return models


def _read_keys(r: Reader, known: dict[str, Target], models: dict[str, tuple[ModelRoute, ...]]) -> list[GatewayKey]:
    raw = r.get("keys")
    if not isinstance(raw, list) or not raw:
        r.error("must be a non-empty list of keys, each {name: NAME, key: env:VAR or kms:SECRET}", "keys")
        return []
    keys: list[GatewayKey] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        kr = Reader(item, f"gateway.keys[{i}]", r.problems, r.file)
        name = kr.str("name", required=True)
        if name is not None and not _NAME.match(name):
            kr.error("must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit", "name")
        elif name is not None and name in names:
            kr.error(f"duplicate key name '{name}'", "name")
        if name is not None:
            names.add(name)
        ref = _read_key_ref(kr)
        allowed_targets = _read_names(kr, "targets", known, "target")
        allowed_models = _read_names(kr, "models", models, "model")
        rpm = kr.get("rpm")
        if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1):
            kr.error(f"must be a whole number of requests per minute >= 1 (got {rpm!r})", "rpm")
            rpm = None
        kr.finish()
        if name is not None and ref is not None:
            keys.append(GatewayKey(name, ref, allowed_targets, allowed_models, rpm))
    return keys


def _read_key_ref(kr: Reader) -> CredentialRef | None:
    value = kr.get("key")
    if value is None:
        kr.error("is required: a reference, env:VAR or kms:SECRET (keys are never written inline)", "key")
        return None
    try:
        ref = parse_ref(value)
    except ValueError as exc:
        kr.error(f"{exc}; a gateway key is env:VAR or kms:SECRET", "key")
        return None
    if ref.scheme not in KEY_SCHEMES:
        kr.error(f"must be env:VAR or kms:SECRET, not {ref.scheme}: (that is a service's own token)", "key")
        return None
    return ref


def _read_names(kr: Reader, field: str, known: dict[str, Any], what: str) -> frozenset[str] | None:
    """An optional list of names that must all be known; absent = all of them."""
    value = kr.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        kr.error(f"must be a non-empty list of {what} names (leave it out to allow every {what})", field)
        return None
    unknown = [v for v in value if v not in known]
    if unknown:
        kr.error(f"unknown {what}(s) {', '.join(unknown)}; configured: {_known_list(known)}", field)
    return frozenset(value)


def _read_probe(r: Reader) -> tuple[str, int]:
    """gateway.probe: the function async rounds are handed to, and how many sync rounds run at once."""
    default = os.environ.get("VPCPROBE_PROBE_FUNCTION") or DEFAULT_PROBE_FUNCTION
    function = r.str("function", default) or default
    if not _FUNCTION.match(function):
        r.error(f"'{function[:100]}' is not a function name: give NAME (FC 3.0) or SERVICE/NAME (a function in "
                "an FC 2.0 service)", "function")
    rounds = r.int("concurrent_rounds", 1, minimum=1)
    r.finish()
    return function, rounds


def _read_body_limits(r: Reader) -> dict[str, int]:
    limits = dict(DEFAULT_BODY_LIMITS)
    for kind in DEFAULT_BODY_LIMITS:
        value = r.get(kind)
        if value is None:
            continue
        size = parse_size(value)
        if size is None:
            r.error(f"must be a size in bytes or with a unit, such as 1MB, 512KB or 1048576 (got {value!r})", kind)
        elif size > FC_SYNC_BODY_LIMIT:
            r.error(f"must be at most 32MB: Function Compute refuses larger synchronous bodies (got {value!r})", kind)
        else:
            limits[kind] = size
    r.finish()
    return limits
