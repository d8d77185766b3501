"""`python -m shared` is the `vpcprobe` command."""

import sys

from shared.local.cli import main

sys.exit(main())
