"""What ``kubectl ballast check`` prints: text for people, JSON for scripts, SARIF 2.1.0 for CI annotations.

Pure: the command reads the manifests and judges them; this module only turns the judgements, with
where each workload came from, into output. A finding is an *error* when it refuses the workload (a
blocking finding under an Enforce policy) and a *warning* otherwise, in every format alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from ballast.api.releasepolicy import AdmissionMode
from ballast.policy.rules import Decision, Finding, Rule

Level = Literal["error", "warning"]

RULE_SUMMARIES: dict[Rule, str] = {
    Rule.REQUIRED_ANNOTATIONS: "A workload carries its owner, alerts and runbook annotations, well formed.",
    Rule.OWNERSHIP: "A workload's owner annotation names the team of the ServiceOwnership that selects it.",
    Rule.AMBIGUOUS_OWNERSHIP: "At most one ServiceOwnership selects a workload.",
    Rule.ALERTS_EXIST: "The alerts a workload names are alerting rules loaded in Prometheus.",
    Rule.FREEZE_WINDOW: "No creation or pod-template change while a freeze window of the workload's tier is open, "
                        "unless it breaks glass.",
    Rule.ROLLED_BACK_REVISION: "A pod template Ballast rolled back is not re-applied within the block period "
                               "unless retried explicitly.",
    Rule.CANARY_TRACK: "Only Ballast's own canaries carry the canary track label.",
    Rule.TIER_DOWNGRADE: "Leaving a ServiceOwnership or moving to a laxer risk tier is flagged.",
}
"""One line per rule for SARIF's rule list (a test keeps it complete)."""

_HELM_SOURCE = re.compile(r"^#\s*Source:\s*(\S.*?)\s*$")


@dataclass(frozen=True)
class Source:
    """Where a manifest came from: the file as given (``-`` for standard input), the document's number in
    it and the line the object starts on (both counted from 1), and the chart template Helm rendered it
    from when ``helm template`` said so in a ``# Source:`` comment."""

    path: str
    document: int
    line: int
    template: str | None = None

    def __str__(self) -> str:
        where = f"{'stdin' if self.path == '-' else self.path}:{self.line}, document {self.document}"
        return f"{where}, from {self.template}" if self.template else where


def helm_template(lines: list[str], start: int) -> str | None:
    """The ``# Source:`` path in the comments just above line ``start`` (0-based), if Helm wrote one."""
    for line in reversed(lines[:start]):
        stripped = line.strip()
        if match := _HELM_SOURCE.match(stripped):
            return match.group(1)
        if stripped and not stripped.startswith("#") and stripped != "---":
            return None
    return None


@dataclass(frozen=True)
class Checked:
    """One workload and the admission decision it would get."""

    kind: str
    namespace: str
    name: str
    source: Source
    decision: Decision

    @property
    def outcome(self) -> Literal["refused", "warned", "admitted"]:
        if not self.decision.allowed:
            return "refused"
        return "warned" if self.decision.findings else "admitted"

    def level(self, finding: Finding) -> Level:
        return "error" if finding.blocking and self.decision.mode is AdmissionMode.ENFORCE else "warning"


@dataclass(frozen=True)
class Report:
    """Every workload checked, under one policy."""

    policy: str
    mode: AdmissionMode
    checked: list[Checked]

    def count(self, outcome: str) -> int:
        return sum(1 for c in self.checked if c.outcome == outcome)

    @property
    def summary(self) -> str:
        return (f"{len(self.checked)} workload(s): {self.count('refused')} refused, {self.count('warned')} with "
                f"warnings (ReleasePolicy {self.policy}, mode {self.mode}).")


def text(report: Report) -> str:
    """One block per workload, then a summary line."""
    labels = {"refused": "REFUSED ", "warned": "WARNING ", "admitted": "OK      "}
    lines = []
    for c in report.checked:
        lines.append(f"{labels[c.outcome]} {c.kind} {c.namespace}/{c.name}  ({c.source})")
        lines += [f"  - {finding.message}" for finding in c.decision.findings]
    return "\n".join([*lines, report.summary])


def as_json(report: Report) -> dict[str, Any]:
    """The report as plain data: a stable shape for scripts (``jq``)."""
    return {
        "policy": report.policy,
        "mode": str(report.mode),
        "summary": {"workloads": len(report.checked), "refused": report.count("refused"),
                    "warned": report.count("warned")},
        "workloads": [{
            "kind": c.kind, "namespace": c.namespace, "name": c.name, "outcome": c.outcome,
            "source": {"file": c.source.path, "document": c.source.document, "line": c.source.line,
                       "template": c.source.template},
            "findings": [{"rule": str(f.rule), "level": c.level(f), "message": f.message}
                         for f in c.decision.findings],
        } for c in report.checked],
    }


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def sarif(report: Report, version: str) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one run, one rule per admission rule, one result per finding.

    Code scanning needs a file and a start line for every result: a file's own lines for files; for
    standard input, the chart template Helm named (its first line: the rendered line is not the
    template's) or ``stdin`` with the line in the stream.
    """
    rules = list(Rule)
    results = []
    for c in report.checked:
        uri = c.source.template or ("stdin" if c.source.path == "-" else c.source.path)
        line = 1 if c.source.template else c.source.line
        location = {
            "physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": line}},
            "logicalLocations": [{"fullyQualifiedName": f"{c.namespace}/{c.kind}/{c.name}", "kind": "resource"}],
        }
        results += [{
            "ruleId": str(f.rule),
            "ruleIndex": rules.index(f.rule),
            "level": c.level(f),
            "message": {"text": f.message},
            "locations": [location],
            "properties": {"document": c.source.document, "outcome": c.outcome},
        } for f in c.decision.findings]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ballast",
                "version": version,
                "rules": [{"id": str(rule), "shortDescription": {"text": RULE_SUMMARIES[rule]},
                           # tier-downgrade warns and never refuses by itself.
                           "defaultConfiguration": {"level": "warning" if rule is Rule.TIER_DOWNGRADE else "error"}}
                          for rule in rules],
            }},
            "results": results,
            "properties": {"policy": report.policy, "mode": str(report.mode)},
        }],
    }
