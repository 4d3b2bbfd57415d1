"""The webhooks' plumbing: the server, its certificate, the review check, and the configurations that
point the API server at it. It decides nothing: the rules are in ``policy/``, the handlers in
``controllers/webhook_handlers.py``."""
