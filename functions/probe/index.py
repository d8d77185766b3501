"""FC entry point of the probe function (timer trigger and InvokeFunction)."""

from shared.fc.probe_function import handle


def handler(event: bytes, context: object) -> str:
    return handle(event, context)
