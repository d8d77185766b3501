"""`python -m shared` is the `vpcprobe` command."""

import sys

from shared.cli import main

sys.exit(main())
