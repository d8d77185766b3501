"""Credential references: `env:NAME`, `kms:SECRET[@STAGE]`, `eas:<region>/<service>`.

Config never holds a secret, only a reference; the provider (shared/credentials/provider.py)
turns it into the value at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import VpcprobeError

_RE_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_RE_KMS = re.compile(r"^([A-Za-z0-9_/+=.@-]+?)(?:@([A-Za-z0-9_-]+))?\Z")
_RE_EAS = re.compile(r"^([a-z0-9-]+)/([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)?)\Z")
# What may be quoted back from a refused reference: a scheme-shaped word (vault:, secret:) only. A secret
# pasted in place of a reference may hold a colon; its text before the colon nearly always has digits or
# capitals (sk-0a1b..., LTAI5t...) and is never echoed.
_RE_SCHEME_SHAPED = re.compile(r"^[a-z](?:[a-z+.-]{0,14}[a-z])?\Z")
SCHEMES = ("env", "kms", "eas")
NOT_A_REFERENCE = (
    "is not a reference (env:NAME, kms:NAME, eas:REGION/SERVICE); secrets are never written inline"
)


class BadReference(VpcprobeError, ValueError):
    """A credential reference that cannot be parsed; the message never quotes more than a scheme-shaped word."""


@dataclass(frozen=True)
class CredentialRef:
    scheme: str  # env | kms | eas
    name: str  # variable name, secret name, or EAS service name
    stage: str | None = None  # KMS VersionStage
    region: str | None = None  # EAS region

    def __str__(self) -> str:
        if self.scheme == "kms":
            return f"kms:{self.name}" + (f"@{self.stage}" if self.stage else "")
        if self.scheme == "eas":
            return f"eas:{self.region}/{self.name}"
        return f"{self.scheme}:{self.name}"


def parse_ref(value: object) -> CredentialRef:
    """Parse `env:NAME`, `kms:SECRET[@STAGE]` or `eas:<region>/<service>`; inline secrets are refused."""
    if not isinstance(value, str) or ":" not in value:
        raise BadReference(
            "must be a reference: env:NAME, kms:SECRET_NAME[@VERSION_STAGE] or eas:<region>/<service> "
            "(secrets are never written inline)"
        )
    scheme, _, rest = value.partition(":")
    if scheme == "env" and _RE_ENV.match(rest):
        return CredentialRef("env", rest)
    if scheme == "kms" and (m := _RE_KMS.match(rest)):
        return CredentialRef("kms", m.group(1), stage=m.group(2))
    if scheme == "eas" and (m := _RE_EAS.match(rest)):
        return CredentialRef("eas", m.group(2), region=m.group(1))
    hints = {
        "env": "env:NAME with NAME an environment variable name",
        "kms": "kms:SECRET_NAME or kms:SECRET_NAME@ACSCurrent",
        "eas": "eas:<region>/<service>, e.g. eas:cn-hangzhou/my_llm",
    }
    if scheme in hints:
        raise BadReference(f"malformed {scheme}: reference; expected {hints[scheme]}")
    if scheme.lower() in SCHEMES:
        raise BadReference(f"unknown reference scheme '{scheme}:'; schemes are lower case: {scheme.lower()}:")
    if _RE_SCHEME_SHAPED.match(scheme):
        raise BadReference(f"unknown reference scheme '{scheme}:'; use env:, kms: or eas:")
    raise BadReference(NOT_A_REFERENCE)
