"""Suite-wide settings."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Property tests run on shared 2-core machines next to SIPp and redis-server: a slow example is
# not a failure, so no per-example deadline (examples and shrinking are unchanged).
settings.register_profile("fivegmc", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fivegmc")
