"""The gateway as an import string for ASGI servers: `uvicorn shared.gateway.asgi:app`.

The config comes from VPCPROBE_CONFIG (or ./vpcprobe.yaml, /code/vpcprobe.yaml) at import time.
shared.gateway.server.main() is the FC entry point; this module is for running the app under
another server's command line (note: only server.py's protocol refuses absolute-form targets).
"""

from __future__ import annotations

from shared import logs
from shared.config.load import load_config
from shared.gateway.app import create_app

logs.configure()
app = create_app(load_config())
