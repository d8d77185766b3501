"""Hypothesis profiles of the fuzz suite: `ci` (the default, part of every `pytest` run: about a minute on a
shared 2-core machine) and `long` (`make fuzz`, VPCPROBE_FUZZ=long: over 10,000 cases in all).

The deadline is the hang detector: a case that takes seconds (an alias bomb being built, a quadratic
number, a regex that backtracks) fails the property like a crash does. It is far above a case's normal
cost (milliseconds) so a busy machine does not fail it; `ci` is derandomized so a CI run is repeatable.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": timedelta(seconds=2),
    "database": None,  # nothing written into the checkout; a failure prints its reproduction blob
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", max_examples=300, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=1500, **_COMMON)

PROFILE = os.environ.get("VPCPROBE_FUZZ", "ci")
if PROFILE not in ("ci", "long"):
    raise RuntimeError(f"VPCPROBE_FUZZ must be ci or long, not {PROFILE!r}")
settings.load_profile(PROFILE)
