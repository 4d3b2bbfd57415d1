"""POSTing JSON to chat and webhook receivers: every request with deadlines, retried with backoff. Decides nothing.

Blocking (urllib3, already the Kubernetes client's HTTP library): called from the notifier's worker threads.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3
from urllib3.util import Retry, Timeout

TIMEOUT = Timeout(connect=2.0, read=5.0)
"""Per attempt: a receiver that accepts the connection and never answers costs 5 s, not a worker."""
ATTEMPTS = 3
RETRIES = Retry(
    total=ATTEMPTS - 1, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
    # A receiver's Retry-After could hold a worker for an hour; the backoff here is the only wait.
    respect_retry_after_header=False, raise_on_status=True, redirect=0,
)
"""Three attempts in all, 0.5 s and 1 s apart: at most about 17 s per message against a receiver that hangs."""

_pool = urllib3.PoolManager(num_pools=16, maxsize=2)


class DeliveryError(Exception):
    """A message that did not arrive; the text says why, for an event and the log."""


def post_json(url: str, body: dict[str, Any]) -> None:
    """POST ``body`` as JSON to ``url``; raise :class:`DeliveryError` unless the receiver answers 2xx."""
    if not url.startswith(("https://", "http://")):
        raise DeliveryError("the URL is not an http(s) URL")
    try:
        response = _pool.request("POST", url, body=json.dumps(body).encode(), timeout=TIMEOUT, retries=RETRIES,
                                 headers={"Content-Type": "application/json"})
    except urllib3.exceptions.MaxRetryError as error:
        raise DeliveryError(f"{ATTEMPTS} attempts failed, the last {_why(error.reason)}") from None
    except urllib3.exceptions.HTTPError as error:
        raise DeliveryError(f"the request failed: {_why(error)}") from None
    if not 200 <= response.status < 300:
        raise DeliveryError(f"the receiver answered HTTP {response.status}")


def _why(error: Exception | None) -> str:
    """What went wrong, without the URL: its path is the receiver's credential (events and logs are not secret)."""
    if isinstance(error, urllib3.exceptions.TimeoutError):
        return "timed out (no answer in time)"
    if isinstance(error, urllib3.exceptions.ResponseError):
        return f"with {error}"  # "too many 500 error responses"
    if isinstance(error, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ProtocolError):
        return "could not connect"
    return f"with {type(error).__name__}"
