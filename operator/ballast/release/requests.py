"""How people steer a running release: annotations on the Release, set by ``kubectl ballast``.

The approver's identity is never taken from the annotation a person writes: the mutating webhook
stamps it from the API server's authentication of the request.
"""

APPROVE_ANNOTATION = "ballast.dev/approve"
"""Set (to any value) to approve a release of a tier that requires approval."""
APPROVED_BY_ANNOTATION = "ballast.dev/approved-by"
"""JSON identity of the approver, stamped by the webhook when ``approve`` is set."""
ABORT_ANNOTATION = "ballast.dev/abort"
"""Set to a reason to roll the release back now."""
PROMOTE_ANNOTATION = "ballast.dev/promote"
"""Set to skip the remaining steps (refused where the tier forbids it)."""
