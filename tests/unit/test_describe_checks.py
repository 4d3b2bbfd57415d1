"""`kubectl ballast describe` shows every check of every analysis, with its values and verdict."""

from __future__ import annotations

from datetime import UTC, datetime

from ballast.api.release import ReleaseStatus
from ballast.cli.sre import _analysis_lines

AT = datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC).isoformat()


def test_every_check_of_every_analysis_is_listed_under_it():
    def analysis(step, verdict, checks):
        return {"step": step, "weight": 25 * (step + 1), "windowStart": AT, "windowEnd": AT, "verdict": verdict,
                "message": f"{verdict} at step {step + 1}.", "canary": {"requests": 160, "errors": 0, "errorRate": 0},
                "baseline": {"requests": 480, "errors": 2, "errorRate": 2 / 480}, "checks": checks}
    status = ReleaseStatus.model_validate({"analyses": [
        analysis(0, "Pass", [
            {"name": "latency", "canary": 0.0991, "baseline": 0.0987, "samples": 160, "verdict": "Pass",
             "message": "Canary p99 latency 99 ms over 160 requests (baseline 99 ms) is within the tier's limits."},
            {"name": "answered", "source": "service", "canary": 158, "verdict": "Pass", "message": "fine"}]),
        analysis(1, "Error", [{"name": "queue-depth", "verdict": "Error", "message": "no data"}]),
    ]})
    lines = _analysis_lines(status)
    assert lines[0] == "Analyses:"
    assert lines[1].startswith("  step 1 at 25%  12:00:05-12:00:05  Pass         canary 0/160 errors (0.00%)")
    assert lines[3] == ("      check latency (policy)  Pass         canary 99 ms, baseline 99 ms over 160 requests: "
                        "Canary p99 latency 99 ms over 160 requests (baseline 99 ms) is within the tier's limits.")
    assert lines[4] == "      check answered (service)  Pass         canary 158, baseline -: fine"
    assert lines[5].startswith("  step 2 at 50%")
    assert lines[7] == "      check queue-depth (policy)  Error        canary -, baseline -: no data"
    assert len(lines) == 8


def test_no_analysis_yet():
    assert _analysis_lines(ReleaseStatus()) == ["Analyses:", "  (none yet)"]
