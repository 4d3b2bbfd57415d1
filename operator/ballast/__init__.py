"""Ballast: release guardrails for Kubernetes.

Layers, with imports pointing only downwards:

- ``ballast.api``: pydantic models of the custom resources (the single source of truth for the CRDs).
- ``ballast.policy``: pure decision functions over plain data (governance, freeze windows, conditions).
- ``ballast.kube``: thin helpers around the Kubernetes client.
- ``ballast.controllers``: kopf handlers that gather inputs, call a decision and apply its result.
- ``ballast.cli``: the ``ballast`` / ``kubectl ballast`` command line.
"""
