"""Every model rule and default of the Ballast API."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ballast.api.common import MAX_DURATION, LabelSelector, RiskTier, is_http_url, parse_duration
from ballast.api.release import Release
from ballast.api.releasepolicy import (
    TIER_DEFAULTS,
    AdmissionMode,
    FreezeWindow,
    InconclusiveAction,
    ReleasePolicy,
    ReleasePolicySpec,
    TierSettings,
)
from ballast.api.serviceownership import ServiceOwnershipSpec


def ownership(**overrides):
    spec = {
        "selector": {"matchLabels": {"app": "checkout"}},
        "owner": "payments",
        "runbook": "https://runbooks.example.com/checkout",
    }
    spec.update(overrides)
    return ServiceOwnershipSpec.model_validate(spec)


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("30s", 30),
            ("5m", 300),
            ("2h", 7200),
            ("1h30m", 5400),
            ("30d", 2_592_000),
            ("1500ms", 1.5),
        ],
    )
    def test_parses(self, text, seconds):
        assert parse_duration(text).total_seconds() == seconds

    @pytest.mark.parametrize("text", ["", "5", "m", "5 m", "-5m", "5min", "1.5h", "0s"])
    def test_refuses(self, text):
        with pytest.raises(ValueError):
            parse_duration(text)

    def test_field_refuses_malformed_duration(self):
        with pytest.raises(ValidationError, match=r"duration|pattern"):
            TierSettings(step_duration="soon")

    def test_durations_are_capped_at_a_year(self):
        assert parse_duration("366d") == MAX_DURATION
        assert parse_duration("8784h") == MAX_DURATION
        for text in ("367d", "9999999999d", "366d1ms", "9" * 40 + "s"):
            with pytest.raises(ValueError, match=r"longer than the longest duration allowed, 366d|not a duration"):
                parse_duration(text)

    @pytest.mark.parametrize("field", ["rollbackBlockPeriod", "freezeWindows"])
    def test_a_huge_duration_is_refused_before_it_overflows(self, field):
        value = "9999999999d"  # OverflowError in timedelta arithmetic before the cap
        spec = {"rollbackBlockPeriod": value} if field == "rollbackBlockPeriod" else \
            {"freezeWindows": [{"name": "w", "schedule": "0 18 * * 5", "duration": value}]}
        with pytest.raises(ValidationError, match="366d"):
            ReleasePolicySpec.model_validate(spec)


class TestSteps:
    @pytest.mark.parametrize("steps", [[1], [5, 25, 50], [1, 100], list(range(1, 21))])
    def test_accepts_increasing_within_bounds(self, steps):
        assert TierSettings(steps=steps).steps == steps

    @pytest.mark.parametrize("steps", [[], [50, 10], [10, 10], [0, 10], [10, 101], list(range(1, 22))])
    def test_refuses(self, steps):
        with pytest.raises(ValidationError):
            TierSettings(steps=steps)

    def test_message_names_the_rule(self):
        with pytest.raises(ValidationError, match="strictly increasing"):
            TierSettings(steps=[50, 10])


class TestRatios:
    @pytest.mark.parametrize("field", ["max_error_rate", "max_increase"])
    @pytest.mark.parametrize("value", [-0.01, 1.01])
    def test_out_of_range(self, field, value):
        with pytest.raises(ValidationError):
            TierSettings(**{field: value})

    @pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
    def test_in_range(self, value):
        assert TierSettings(max_error_rate=value).max_error_rate == value


class TestTierDefaults:
    def test_every_tier_has_defaults(self):
        assert set(TIER_DEFAULTS) == set(RiskTier)

    def test_riskier_tiers_start_smaller_and_stricter(self):
        order = [RiskTier.CRITICAL, RiskTier.HIGH, RiskTier.MEDIUM, RiskTier.LOW]
        first_steps = [TIER_DEFAULTS[t].steps[0] for t in order]
        ceilings = [TIER_DEFAULTS[t].max_error_rate for t in order]
        assert first_steps == sorted(first_steps)
        assert ceilings == sorted(ceilings)

    def test_critical_needs_approval_and_rolls_back_on_inconclusive(self):
        critical = ReleasePolicySpec().tiers.for_tier(RiskTier.CRITICAL)
        assert critical.approval_required is True
        assert critical.on_inconclusive is InconclusiveAction.ROLLBACK
        assert critical.allow_skip is False

    def test_partial_override_keeps_the_tiers_own_defaults(self):
        spec = ReleasePolicySpec.model_validate({"tiers": {"critical": {"steps": [2, 20]}}})
        critical = spec.tiers.for_tier(RiskTier.CRITICAL)
        assert critical.steps == [2, 20]
        assert critical.max_error_rate == TIER_DEFAULTS[RiskTier.CRITICAL].max_error_rate
        assert critical.approval_required is True

    def test_unset_tier_takes_defaults(self):
        assert ReleasePolicySpec().tiers.for_tier(RiskTier.LOW) == TIER_DEFAULTS[RiskTier.LOW]


class TestPolicyDefaults:
    def test_empty_policy_is_complete(self):
        spec = ReleasePolicySpec()
        assert spec.admission.mode is AdmissionMode.ENFORCE
        assert spec.admission.required_annotations.owner == "ballast.dev/owner"
        assert spec.admission.required_annotations.alerts == "ballast.dev/alerts"
        assert spec.admission.required_annotations.runbook == "ballast.dev/runbook"
        assert spec.rollback_block_period == "24h"
        assert spec.release_history_limit == 50
        assert spec.error_budget.exempt_change_types == ["fix", "reliability", "security"]
        assert "$namespace" in spec.prometheus.queries.requests

    def test_camel_case_on_the_wire(self):
        spec = ReleasePolicySpec.model_validate({"admission": {"mode": "Warn", "exemptNamespaces": ["sandbox"]}})
        assert spec.admission.mode is AdmissionMode.WARN
        assert spec.to_wire()["admission"]["exemptNamespaces"] == ["sandbox"]

    def test_unknown_mode_refused(self):
        with pytest.raises(ValidationError):
            ReleasePolicySpec.model_validate({"admission": {"mode": "Block"}})

    def test_duplicate_window_names_refused(self):
        window = {"name": "weekend", "schedule": "0 18 * * 5", "duration": "62h"}
        with pytest.raises(ValidationError, match="repeated: weekend"):
            ReleasePolicySpec.model_validate({"freezeWindows": [window, window]})

    def test_release_policy_kind_metadata(self):
        assert ReleasePolicy.scope == "Cluster"
        assert ReleasePolicy.plural == "releasepolicies"


class TestFreezeWindows:
    def test_absolute(self):
        w = FreezeWindow.model_validate(
            {"name": "launch", "start": "2026-11-27T00:00:00Z", "end": "2026-11-30T00:00:00Z", "tiers": ["critical"]}
        )
        assert w.tiers == [RiskTier.CRITICAL]

    def test_all_tiers_by_default(self):
        w = FreezeWindow(name="weekend", schedule="0 18 * * 5", duration="62h", time_zone="Europe/Berlin")
        assert set(w.tiers) == set(RiskTier)

    @pytest.mark.parametrize(
        "fields",
        [
            {},  # neither form
            {"start": "2026-11-27T00:00:00Z"},  # half absolute
            {"schedule": "0 18 * * 5"},  # half recurring
            {"start": "2026-11-27T00:00:00Z", "end": "2026-11-26T00:00:00Z"},  # ends before start
            {"start": "2026-11-27T00:00:00", "end": "2026-11-28T00:00:00"},  # no offset
            {
                "start": "2026-11-27T00:00:00Z",
                "end": "2026-11-28T00:00:00Z",
                "schedule": "0 18 * * 5",
                "duration": "1h",
            },  # both forms
            {"schedule": "not a cron", "duration": "1h"},
            {"schedule": "0 18 * * 5 2026", "duration": "1h"},  # six fields
            {"schedule": "0 25 * * *", "duration": "1h"},  # hour out of range
            {"schedule": "0 18 * * 5", "duration": "367d"},  # longer than the cap
            {"schedule": "0 18 * * 5", "duration": "1h", "timeZone": "Mars/Olympus"},
            {"schedule": "0 18 * * 5", "duration": "1h", "tiers": ["extreme"]},
        ],
    )
    def test_refused(self, fields):
        with pytest.raises(ValidationError):
            FreezeWindow.model_validate({"name": "w", **fields})

    @pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"])
    def test_a_schedule_that_never_occurs_is_refused_with_the_fix(self, schedule):
        with pytest.raises(ValidationError, match=r"never occurs .* pick days every named month has"):
            FreezeWindow(name="w", schedule=schedule, duration="1h")

    @pytest.mark.parametrize("schedule", ["0 0 29 2 *", "0 0 31 * *", "0 0 30 2 1", "0 0 L 2 *"])
    def test_rare_schedules_that_occur_are_accepted(self, schedule):
        assert FreezeWindow(name="w", schedule=schedule, duration="1h").schedule == schedule

    def test_time_zone_message(self):
        with pytest.raises(ValidationError, match="IANA time zone"):
            FreezeWindow(name="w", schedule="0 18 * * 5", duration="1h", time_zone="CEST")


class TestServiceOwnership:
    def test_defaults(self):
        spec = ownership()
        assert spec.risk_tier is RiskTier.MEDIUM
        assert spec.alerts == []
        assert spec.slo is None

    @pytest.mark.parametrize("tier", ["extreme", "CRITICAL", ""])
    def test_unknown_tier_refused(self, tier):
        with pytest.raises(ValidationError):
            ownership(riskTier=tier)

    @pytest.mark.parametrize("runbook", [
        "ftp://x/y", "runbooks/checkout", "https://", "http:// bad", "http://:8080/x", "http://exa mple.com",
        "https://[zz]/x", "https://[::1/x", "http://a:99999/", "http://a:port/", "javascript:alert(1)",
        "http://runbooks..example.com/", "http://host/a\nb", "mailto:sre@example.com", "//example.com/x",
        "http://[::1]@host/", "http://[a]b@host/", "https://[1.2.3.4]/",
    ])
    def test_runbook_must_be_http_url(self, runbook):
        with pytest.raises(ValidationError, match="not an http\\(s\\) URL with a host"):
            ownership(runbook=runbook)
        assert not is_http_url(runbook)

    @pytest.mark.parametrize("runbook", [
        "HTTPS://Runbooks.Example.com/checkout", "Http://wiki/sre", "http://[::1]:8080/x", "https://[2001:db8::7]/",
        "http://10.0.0.7:80/runbook", "https://bücher.example/ablauf?q=ü#start", "https://例え.テスト/手順",
        "https://user@wiki.example.com:8443/x", "https://example.com.", "http://my_host.internal/x",
    ])
    def test_runbook_accepts_every_http_url(self, runbook):
        assert ownership(runbook=runbook).runbook == runbook
        assert is_http_url(runbook)

    @pytest.mark.parametrize("owner", ["Payments", "-payments", "pay ments", "a" * 64, ""])
    def test_owner_must_be_team_name(self, owner):
        with pytest.raises(ValidationError):
            ownership(owner=owner)

    @pytest.mark.parametrize("availability", [0.0, 1.0, 1.5])
    def test_slo_bounds(self, availability):
        with pytest.raises(ValidationError):
            ownership(slo={"availability": availability})

    def test_slo_default_window(self):
        assert ownership(slo={"availability": 0.999}).slo.window == "30d"

    def test_selector_required(self):
        with pytest.raises(ValidationError):
            ServiceOwnershipSpec.model_validate({"owner": "payments", "runbook": "https://r.example.com"})


class TestLabelSelector:
    @pytest.mark.parametrize(
        ("selector", "labels", "expected"),
        [
            ({}, {}, True),
            ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
            ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
            ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
            ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
            ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
            ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
            ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
            ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
        ],
    )
    def test_matches(self, selector, labels, expected):
        assert LabelSelector.model_validate(selector).matches(labels) is expected


class TestRelease:
    def test_minimal_release(self):
        release = Release.model_validate({"spec": {"deployment": "checkout", "toRevision": "abc123"}})
        assert release.spec.tier is RiskTier.MEDIUM
        assert release.spec.change_type == "feature"

    def test_unknown_change_type_refused(self):
        with pytest.raises(ValidationError):
            Release.model_validate({"spec": {"deployment": "d", "toRevision": "r", "changeType": "yolo"}})
