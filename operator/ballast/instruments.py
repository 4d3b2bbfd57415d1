"""The operator's own Prometheus metrics (served on ``/metrics``), in one place so names stay consistent.

Dashboards and alerts are built on these names; a test checks that every metric a dashboard queries
is defined here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ballast.api.serviceownership import ReleaseStatistics

LEADER = Gauge(
    "ballast_leader",
    "1 on the replica that acts (holds the leader Lease, or runs without leader election), 0 on a standby.",
)
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
FREEZE_ACTIVE = Gauge(
    "ballast_freeze_active",
    "1 while a ReleasePolicy's freeze window is open, per window and frozen tier.",
    ["policy", "window", "tier"],
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
    "Canary analyses, by tier and verdict (Pass, Fail, Inconclusive, Error).",
    ["tier", "verdict"],
)
CHECK_VERDICTS = Counter(
    "ballast_analysis_check_verdicts_total",
    "Checks judged at a step's verdict (latency and custom checks), by tier, check name and verdict.",
    ["tier", "check", "verdict"],
)
ANALYSES_IN_FLIGHT = Gauge(
    "ballast_analyses_in_flight",
    "Looks at canaries waiting for the metrics provider right now; high while a provider hangs.",
)
PROVIDER_FAILURES = Counter(
    "ballast_metrics_provider_failures_total",
    "Requests to a metrics provider that failed, timed out or were refused by its open circuit breaker.",
    ["provider", "state"],
)
PROVIDER_CIRCUIT_OPEN = Gauge(
    "ballast_metrics_provider_circuit_open",
    "1 while a metrics provider's circuit breaker refuses queries after repeated failures.",
    ["provider"],
)
ROLLBACK_ACTUATION = Histogram(
    "ballast_rollback_actuation_seconds",
    "Time from the decision to roll back (failing verdict, deadline, abort) to the canary deleted and the "
    "stable template restored, inside the operator.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SERVICE_RELEASES = Gauge(
    "ballast_service_releases",
    "Finished releases (promoted or rolled back) among a service's kept Release records.",
    ["namespace", "service"],
)
SERVICE_ROLLBACKS = Gauge(
    "ballast_service_rollbacks",
    "Rolled-back releases among a service's kept Release records.",
    ["namespace", "service"],
)
SERVICE_CHANGE_FAILURE_RATE = Gauge(
    "ballast_service_change_failure_rate",
    "Rolled back / finished releases of a service.",
    ["namespace", "service"],
)
SERVICE_MTTR = Gauge(
    "ballast_service_mean_time_to_restore_seconds",
    "Mean time from a failing change being recorded to its rollback completing.",
    ["namespace", "service"],
)
SERVICE_ERROR_BUDGET = Gauge(
    "ballast_service_error_budget_remaining",
    "Share of a service's SLO error budget left over its window (negative when overspent).",
    ["namespace", "service"],
)

NOTIFICATIONS = Counter(
    "ballast_notifications_total",
    "Notifications to chat and webhook receivers, by event, receiver and outcome (sent, failed, dropped: "
    "the delivery queue was full).",
    ["event", "receiver", "outcome"],
)

def export_service_metrics(namespace: str, service: str, statistics: ReleaseStatistics,
                           budget: float | None) -> None:
    """Mirror a ServiceOwnership's statistics in /metrics (gauges, since they come from kept records)."""
    labels = {"namespace": namespace, "service": service}
    SERVICE_RELEASES.labels(**labels).set(statistics.releases)
    SERVICE_ROLLBACKS.labels(**labels).set(statistics.rollbacks)
    SERVICE_CHANGE_FAILURE_RATE.labels(**labels).set(statistics.change_failure_rate)
    if statistics.mean_time_to_restore_seconds is not None:
        SERVICE_MTTR.labels(**labels).set(statistics.mean_time_to_restore_seconds)
    if budget is not None:
        SERVICE_ERROR_BUDGET.labels(**labels).set(budget)
