"""Console: the message as plain text on stdout (FC ships stdout to the logs; locally, the terminal).

For `vpcprobe check --alert` without any robot or mailbox, for the demo, and as a last fallback
that always accepts.
"""

from __future__ import annotations

import sys

from shared.alerts.channels import Channel, Delivery, Message, render
from shared.config.reader import Reader
from shared.credentials.provider import TokenProvider


class Console(Channel):
    def __init__(self, name: str, *, send_resolved: bool = True) -> None:
        self.name, self.send_resolved = name, send_resolved

    async def send(self, message: Message, tokens: TokenProvider) -> Delivery:
        text = render.plain(message)
        rule = "─" * 72
        print(f"{rule}\n[alert via console channel '{self.name}']\n{text}\n{rule}", file=sys.stdout, flush=True)
        return Delivery(True)


def from_config(r: Reader, name: str) -> Console:
    """Validate an `alerts.channels[]` entry of type console (it has no settings of its own)."""
    return Console(name, send_resolved=r.bool("send_resolved", True))
