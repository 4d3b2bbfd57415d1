"""Pure decision functions over plain data: no kopf, no HTTP, no clock unless passed in.

Every rule Ballast applies lives here so it can be tested exhaustively and reused by the operator,
the admission webhook and the offline ``kubectl ballast check``.
"""
