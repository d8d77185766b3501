"""The two ways getting a credential fails, each a VpcprobeError.

A CloudError is one failed control-plane call (KMS, EAS, FC), classified by `kind`; the provider
turns it into a CredentialError naming the reference, which is what probes and alert channels see.
Both live here, below the modules that raise them, so none of those needs another to import.
"""

from __future__ import annotations

from shared.errors import VpcprobeError


class CredentialError(VpcprobeError):
    """A credential could not be obtained; the message names the reference, never the value."""


class CloudError(VpcprobeError):
    """A control-plane call failed; the message says what, why and what to change, never a secret."""

    def __init__(self, message: str, *, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind  # credentials | auth | forbidden | not_found | throttled | network | server | error
