"""kopf handlers: thin code that gathers inputs from indexes, calls a pure decision, and applies it.

Importing this package registers every handler with kopf's default registry: each module below is
imported here on purpose, those that register handlers and those that only reconcile alike, so what
runs never depends on which module happens to import which. ``triggers`` has the table of which events
wake which reconciler.

Ballast never uses kopf's stateful handlers (``on.create``/``on.update``) on users' Deployments:
those would write progress annotations to objects users own (GitOps drift). Deployments are only
indexed and observed through ``on.event``.
"""

from ballast.controllers import (
    analysis,
    indexes,
    ownership,
    policies,
    releases,
    startup,
    triggers,
    webhook_configurations,
    webhook_handlers,
)

__all__ = ["analysis", "indexes", "ownership", "policies", "releases", "startup", "triggers",
           "webhook_configurations", "webhook_handlers"]
