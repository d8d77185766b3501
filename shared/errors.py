"""The one base of every error vpcprobe raises on purpose, like httpx's `HTTPError` tree.

Callers match the subclass they can act on (`ConfigError`, `UrlError`, `CredentialError`,
`StoreError`, `CloudError`, `BadEvent`, ...) or `VpcprobeError` for "anything vpcprobe refused";
an exception outside this tree is a bug, never an expected outcome.
"""

from __future__ import annotations


class VpcprobeError(Exception):
    """Something vpcprobe refused or could not do, with a message meant for a person."""
