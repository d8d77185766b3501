"""The function's own Alibaba Cloud access key, which every control-plane call is signed with.

In order: FC's `context.credentials` (python3.10), the ALIBABA_CLOUD_ACCESS_KEY_* variables (FC
sets them on every runtime from the function's role), and on a laptop the aliyun CLI profile or
~/.alibabacloud/credentials.ini through alibabacloud-credentials (loaded only then).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared import logs
from shared.credentials.errors import CloudError
from shared.credentials.settings import in_fc

ENV_AK_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_AK_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_STS_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"


@dataclass(frozen=True)
class AccessKey:
    """Alibaba Cloud credentials; repr hides the secret parts."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    source: str = ""


def resolve_access_key(environ: Mapping[str, str] | None = None, context: Any = None) -> AccessKey:
    """The credentials control-plane calls use, in order: FC's `context.credentials` (python3.10),
    ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET / _SECURITY_TOKEN (FC sets them on every runtime from the
    function's role), and on a laptop the aliyun CLI profile or ~/.alibabacloud/credentials.ini.

    Every secret part is registered for log redaction. Missing credentials raise one CloudError
    that names the variables or the FC role setting to fix.
    """
    env = os.environ if environ is None else environ
    creds = getattr(context, "credentials", None) if context is not None else None
    if creds is not None:
        ak_id = getattr(creds, "access_key_id", None) or getattr(creds, "accessKeyId", None)
        secret = getattr(creds, "access_key_secret", None) or getattr(creds, "accessKeySecret", None)
        token = getattr(creds, "security_token", None) or getattr(creds, "securityToken", None)
        if ak_id and secret:
            return _registered(AccessKey(ak_id, secret, token or None, "fc-context"))
    ak_id, secret, token = env.get(ENV_AK_ID), env.get(ENV_AK_SECRET), env.get(ENV_STS_TOKEN)
    if ak_id or secret:
        missing = [name for name, value in ((ENV_AK_ID, ak_id), (ENV_AK_SECRET, secret)) if not value]
        if missing:
            present = ENV_AK_SECRET if ak_id is None else ENV_AK_ID
            raise CloudError(f"{missing[0]} is not set ({present} is): set both", kind="credentials")
        if ak_id.startswith("STS.") and not token:
            raise CloudError(
                f"{ENV_AK_ID} is a temporary (STS.) key but {ENV_STS_TOKEN} is not set: set it too",
                kind="credentials",
            )
        return _registered(AccessKey(ak_id, secret, token or None, "environment"))
    if in_fc(env):
        raise CloudError(
            f"no Alibaba Cloud credentials in the function: FC passes the function role's temporary credentials "
            f"as {ENV_AK_ID} / {ENV_AK_SECRET} / {ENV_STS_TOKEN} only when the function has a role; set `role:` "
            "in s.yaml (VPCPROBE_ROLE_NAME) to a RAM role trusted by fc.aliyuncs.com and deploy again",
            kind="credentials",
        )
    return _registered(_profile_chain(env))


def _registered(key: AccessKey) -> AccessKey:
    logs.register_secret(key.access_key_secret)
    logs.register_secret(key.security_token)
    return key


_chains: dict[tuple, list[Any]] = {}
_chains_lock = threading.Lock()


def _profile_chain(env: Mapping[str, str]) -> AccessKey:
    """The laptop part of the standard chain, through alibabacloud-credentials (what the SDKs use).

    The ECS metadata service is asked only when ALIBABA_CLOUD_ECS_METADATA names the role: probing
    it from a laptop costs seconds of timeouts and prints tracebacks before failing anyway.
    """
    home = env.get("HOME") or os.path.expanduser("~")
    cli_file = os.path.join(home, ".aliyun", "config.json")
    ini_file = env.get("ALIBABA_CLOUD_CREDENTIALS_FILE") or os.path.join(home, ".alibabacloud", "credentials.ini")
    profile = env.get("ALIBABA_CLOUD_PROFILE") or None
    ecs_role = env.get("ALIBABA_CLOUD_ECS_METADATA") or None
    tried = [f"{ENV_AK_ID} / {ENV_AK_SECRET}", f"aliyun CLI profile {cli_file}", f"credentials file {ini_file}"]
    if ecs_role:
        tried.append(f"ECS RAM role {ecs_role}")
    key = (cli_file, ini_file, profile, ecs_role)
    with _chains_lock:
        if key not in _chains:
            _chains[key] = _build_chain(cli_file, ini_file, profile, ecs_role)
        chain = _chains[key]
    problems = []
    for name, provider in chain:
        try:
            c = provider.get_credentials()
        except Exception as exc:  # the library raises its own exception types, and OSErrors
            problems.append(f"{name}: {logs.redact_text(str(exc))[:200]}")
            continue
        if c is not None and c.get_access_key_id() and c.get_access_key_secret():
            return AccessKey(c.get_access_key_id(), c.get_access_key_secret(), c.get_security_token() or None, name)
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise CloudError(
        f"no Alibaba Cloud credentials found; tried {', '.join(tried)}{detail}. Set {ENV_AK_ID} and "
        f"{ENV_AK_SECRET} (plus {ENV_STS_TOKEN} for an STS key) or run `aliyun configure`",
        kind="credentials",
    )


def _build_chain(cli_file: str, ini_file: str, profile: str | None, ecs_role: str | None) -> list[Any]:
    chain: list[Any] = []
    if os.path.isfile(cli_file):
        from alibabacloud_credentials.provider import CLIProfileCredentialsProvider

        chain.append(("aliyun CLI profile", CLIProfileCredentialsProvider(profile_file=cli_file, profile_name=profile)))
    if os.path.isfile(ini_file):
        from alibabacloud_credentials.provider import ProfileCredentialsProvider

        chain.append(("credentials file", ProfileCredentialsProvider(profile_file=ini_file, profile_name=profile)))
    if ecs_role:
        from alibabacloud_credentials.provider import EcsRamRoleCredentialsProvider

        chain.append(("ECS RAM role", EcsRamRoleCredentialsProvider(role_name=ecs_role)))
    return chain
