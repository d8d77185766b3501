"""FC entry points of the probe function: the handler (timer trigger and InvokeFunction) and the
instance's Initializer hook (s.yaml instanceLifecycleConfig)."""

from shared.fc.probe_function import handle
from shared.fc.probe_function import initialize as _initialize


def handler(event: bytes, context: object) -> str:
    return handle(event, context)


def initialize(context: object) -> None:
    _initialize(context)
