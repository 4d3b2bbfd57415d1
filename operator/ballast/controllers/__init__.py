"""kopf handlers: thin code that gathers inputs from indexes, calls a pure decision, and applies it.

Importing this package registers every handler with kopf's default registry.
Ballast never uses kopf's stateful handlers (``on.create``/``on.update``) on users' Deployments:
those would write progress annotations to objects users own (GitOps drift). Deployments are only
indexed and observed through ``on.event``.
"""

from ballast.controllers import admission, indexes, ownership, policies, startup

__all__ = ["admission", "indexes", "ownership", "policies", "startup"]
