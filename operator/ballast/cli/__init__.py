"""The ``ballast`` command line, installed also as ``kubectl-ballast`` so kubectl finds it as a plugin."""
