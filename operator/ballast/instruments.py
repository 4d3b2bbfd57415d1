"""The operator's own Prometheus metrics (served on ``/metrics``), in one place so names stay consistent.

Dashboards and alerts are built on these names; a test checks that every metric a dashboard queries
is defined here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ADMISSION_REQUESTS = Counter(
    "ballast_admission_requests_total",
    "Admission requests for workloads, by kind, decision (allowed, warned, refused, audited, exempt) and rule.",
    ["kind", "decision", "rule"],
)
ADMISSION_LATENCY = Histogram(
    "ballast_admission_duration_seconds",
    "Time spent deciding one workload admission request, inside the operator.",
    ["kind"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
BREAK_GLASS = Counter(
    "ballast_break_glass_total",
    "Changes let through a freeze window with ballast.dev/emergency.",
    ["namespace", "window"],
)
POLICY_VIOLATIONS = Gauge(
    "ballast_policy_violations",
    "Admitted workloads that break their governing ReleasePolicy (background audit).",
    ["policy"],
)
RELEASE_TRANSITIONS = Counter(
    "ballast_release_transitions_total",
    "Release phase transitions, by tier, the phase entered and its reason.",
    ["tier", "phase", "reason"],
)
ANALYSIS_VERDICTS = Counter(
    "ballast_analysis_verdicts_total",
    "Canary analyses, by tier and verdict (Pass, Fail, Inconclusive).",
    ["tier", "verdict"],
)
