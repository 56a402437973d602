"""Settings for the whole suite.

Hypothesis' default 200 ms deadline per example measures the machine, not the code: on a loaded
CI runner an example that parses a deeply nested value can take longer and fail as "flaky".
Speed belongs in the benchmarks (bench/), so the properties run without a deadline and without
the too-slow health check; everything else stays at hypothesis' defaults.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("pgwarden", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pgwarden")
