"""Building blocks shared by every Ballast API type.

The pydantic models in this package are the single source of truth for the custom resources:
the operator parses objects with them and ``make manifests`` renders ``crds/*.yaml`` from them.
Everything here therefore has to be expressible as a *structural* OpenAPI v3 schema, which is why
constraints are written as patterns and bounds rather than as arbitrary Python checks wherever possible.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "ballast.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class ApiModel(BaseModel):
    """Base for every API type: camelCase on the wire, snake_case in Python, docstrings as descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
    )

    def to_wire(self) -> dict[str, Any]:
        """Return the JSON-compatible, camelCase form the API server stores."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_wire_clearing(self) -> dict[str, Any]:
        """``to_wire`` plus an explicit null for every empty top-level field, so that a merge patch of a
        whole status also clears what is no longer set (e.g. the previous step's canaryReadyAt)."""
        wire = self.to_wire()
        for name, field in type(self).model_fields.items():
            if getattr(self, name) is None:
                wire[field.alias or name] = None
        return wire


class ApiResource(ApiModel):
    """Base of the three kinds: what their CustomResourceDefinitions say besides the schema."""

    kind: ClassVar[str]
    plural: ClassVar[str]
    singular: ClassVar[str]
    short_names: ClassVar[list[str]]
    scope: ClassVar[str]
    printer_columns: ClassVar[list[dict[str, Any]]]


class RiskTier(StrEnum):
    """How much damage a bad change to a service can do; decides how carefully it is released."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


TIER_ORDER = (RiskTier.LOW, RiskTier.MEDIUM, RiskTier.HIGH, RiskTier.CRITICAL)
"""Risk tiers from the least to the most strict."""


def stricter(a: RiskTier, b: RiskTier) -> RiskTier:
    return max(a, b, key=TIER_ORDER.index)


DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = timedelta(days=366)
"""The longest duration any field takes: a year covers every freeze, SLO window and block period, and keeps
arithmetic on dates far from Python's limits (``9999999999d`` would overflow)."""
MAX_DURATION_LENGTH = 32


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration such as ``30s``, ``5m``, ``1h30m`` or ``30d``, at most MAX_DURATION.

    Raises ``ValueError`` with a sentence naming the accepted form when the text is not one.
    """
    if len(text) > MAX_DURATION_LENGTH or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"{text!r} is not a duration: use a number followed by ms, s, m, h or d, such as 30s, 5m or 2h"
        )
    seconds = sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is longer than the longest duration allowed, {MAX_DURATION.days}d: "
                         "use a shorter one")
    return timedelta(seconds=seconds)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=MAX_DURATION_LENGTH, examples=["30s", "5m", "2h"]),
    AfterValidator(_check_duration),
]
"""A positive duration written like ``30s``, ``5m``, ``2h`` or ``1h30m``, at most ``366d``."""

Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
"""A fraction between 0 and 1 (``0.01`` is one percent)."""

MAX_URL_LENGTH = 2048
_SUB_DELIMS = "!$&'()*+,;="
_REG_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "-._~%" + _SUB_DELIMS)


def is_http_url(text: str) -> bool:
    """Whether ``text`` is an absolute http(s) URL with a host, read per RFC 3986 (and RFC 3987 for names).

    The scheme is case-insensitive; the host is a registered name (international names welcome), an IPv4
    address or a bracketed IP literal such as ``[::1]``; a port, when given, is 0-65535. Whitespace and
    control characters are refused anywhere.
    """
    if not text or len(text) > MAX_URL_LENGTH or any(c.isspace() or not c.isprintable() for c in text):
        return False
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError:  # also an IP literal that is not one, e.g. http://[zz]/
        return False
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname
    if parts.netloc.rpartition("@")[2].startswith("["):  # an IP literal: IPv6 or IPvFuture (RFC 3986 3.2.2)
        return host.startswith("v") or _is_ipv6(host)
    labels = host.removesuffix(".").split(".")  # a trailing dot names the DNS root
    return "[" not in parts.netloc and all(labels) and all(c in _REG_NAME_CHARS or not c.isascii() for c in host)


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _check_url(text: str) -> str:
    if not is_http_url(text):
        raise ValueError(f"{text!r} is not an http(s) URL with a host, such as https://runbooks.example.com/checkout")
    return text


HttpUrl = Annotated[
    str,
    # The schema's pattern is the part OpenAPI can say; the validator (which the admission webhook runs
    # too) decides, with a message that says what a URL needs.
    Field(max_length=MAX_URL_LENGTH, json_schema_extra={"pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$"}),
    AfterValidator(_check_url),
]
"""An absolute http or https URL with a host (RFC 3986), e.g. ``https://runbooks.example.com/checkout``."""

TEAM_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
TeamName = Annotated[str, Field(pattern=TEAM_PATTERN, min_length=1, max_length=63)]
"""A team name in DNS-label form, e.g. ``payments`` or ``checkout-core``."""

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
ANNOTATION_KEY_PATTERN = rf"^({_DNS_LABEL}(\.{_DNS_LABEL})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
AnnotationKey = Annotated[str, Field(pattern=ANNOTATION_KEY_PATTERN, max_length=316)]
"""A Kubernetes annotation key, optionally with a DNS prefix, e.g. ``ballast.dev/owner``."""


class LabelSelectorRequirement(ApiModel):
    """One expression of a label selector, as in ``metav1.LabelSelectorRequirement``."""

    key: str = Field(min_length=1)
    """The label key the expression applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the label's value relates to ``values``."""
    values: list[str] = Field(default_factory=list)
    """Values for ``In`` and ``NotIn``; must be empty for ``Exists`` and ``DoesNotExist``."""


class LabelSelector(ApiModel):
    """A Kubernetes label selector. An empty selector matches everything."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    """Labels that must all be present with exactly these values."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)
    """Expressions that must all hold."""

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels is selected."""
        labels = labels or {}
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for expr in self.match_expressions:
            present = expr.key in labels
            if expr.operator == "Exists" and not present:
                return False
            if expr.operator == "DoesNotExist" and present:
                return False
            if expr.operator == "In" and (not present or labels[expr.key] not in expr.values):
                return False
            if expr.operator == "NotIn" and present and labels[expr.key] in expr.values:
                return False
        return True

    @property
    def specificity(self) -> int:
        """How many constraints the selector has; more constraints means more specific."""
        return len(self.match_labels) + len(self.match_expressions)


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A standard Kubernetes condition (``metav1.Condition``)."""

    type: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=316)
    """What aspect of the object the condition describes, e.g. ``Ready``."""
    status: ConditionStatus
    """Whether the condition holds: True, False or Unknown."""
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    """A CamelCase word for programs, e.g. ``NoWorkloads``."""
    message: str = Field(default="", max_length=32768)
    """A sentence for humans explaining the reason and, where one exists, the fix."""
    last_transition_time: datetime
    """When the status last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The ``metadata.generation`` the condition was computed from."""
