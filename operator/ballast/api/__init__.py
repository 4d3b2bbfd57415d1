"""The Ballast API (group ``ballast.dev``, version ``v1alpha1``) as pydantic models."""

from ballast.api.common import API_VERSION, GROUP, VERSION, Condition, LabelSelector, RiskTier
from ballast.api.release import Release, ReleasePhase, ReleaseSpec, ReleaseStatus, Verdict
from ballast.api.releasepolicy import ReleasePolicy, ReleasePolicySpec, ReleasePolicyStatus, TierSettings
from ballast.api.serviceownership import ServiceOwnership, ServiceOwnershipSpec, ServiceOwnershipStatus

__all__ = [
    "API_VERSION", "GROUP", "VERSION", "Condition", "LabelSelector", "Release", "ReleasePhase",
    "ReleasePolicy", "ReleasePolicySpec", "ReleasePolicyStatus", "ReleaseSpec", "ReleaseStatus",
    "RiskTier", "ServiceOwnership", "ServiceOwnershipSpec", "ServiceOwnershipStatus", "TierSettings",
    "Verdict",
]
