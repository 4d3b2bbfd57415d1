"""What a well-formed AdmissionReview is, checked before kopf reads one.

kopf answers a body that is JSON but not an AdmissionReview (no ``request``, a uid that is a number, a
list) with a 500, as if Ballast had failed. The API server never sends such a thing; whoever does gets
a 400 that says what is wrong, and the webhook stays up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp.web
import kopf

API_VERSIONS = frozenset({"admission.k8s.io/v1", "admission.k8s.io/v1beta1"})
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})


def review_problem(data: Any) -> str | None:
    """Why ``data`` is not an AdmissionReview request kopf can serve, or None when it is one."""
    if not isinstance(data, Mapping):
        return "The body is not a JSON object."
    api_version = data.get("apiVersion")
    if data.get("kind") != "AdmissionReview" or not isinstance(api_version, str) or api_version not in API_VERSIONS:
        return "The body is not an AdmissionReview of admission.k8s.io/v1 or v1beta1."
    request = data.get("request")
    if not isinstance(request, Mapping):
        return "The AdmissionReview has no request object."
    return _request_problem(request) or _optional_field_problem(request)


def _request_problem(request: Mapping[str, Any]) -> str | None:
    """What is wrong with the fields every request has."""
    if not isinstance(request.get("uid"), str) or not request["uid"]:
        return "The AdmissionReview's request.uid is not a non-empty string."
    for field, keys in (("kind", ("group", "version", "kind")), ("resource", ("group", "version", "resource"))):
        value = request.get(field)
        if not isinstance(value, Mapping) or not all(isinstance(value.get(key), str) for key in keys):
            return f"The AdmissionReview's request.{field} is not an object with string {', '.join(keys)}."
    operation = request.get("operation")
    if not isinstance(operation, str) or operation not in OPERATIONS:
        return "The AdmissionReview's request.operation is not CREATE, UPDATE, DELETE or CONNECT."
    return None


def _optional_field_problem(request: Mapping[str, Any]) -> str | None:
    """What is wrong with the fields a request may leave out."""
    for field in ("object", "oldObject", "userInfo", "options"):
        if request.get(field) is not None and not isinstance(request[field], Mapping):
            return f"The AdmissionReview's request.{field} is not an object."
    for field in ("name", "namespace", "subResource"):
        if request.get(field) is not None and not isinstance(request[field], str):
            return f"The AdmissionReview's request.{field} is not a string."
    if request.get("dryRun") is not None and not isinstance(request["dryRun"], bool):
        return "The AdmissionReview's request.dryRun is not a boolean."
    return None


class CheckedWebhookServer(kopf.WebhookServer):
    """kopf's webhook server, answering a body that is not a well-formed AdmissionReview with a 400."""

    @staticmethod
    async def _serve(fn: Any, request: aiohttp.web.Request) -> aiohttp.web.Response:
        try:
            data = json.loads(await request.text())
        except (UnicodeDecodeError, ValueError) as error:
            raise aiohttp.web.HTTPBadRequest(reason=f"The body is not JSON: {error}") from None
        if problem := review_problem(data):
            raise aiohttp.web.HTTPBadRequest(reason=problem)
        return await kopf.WebhookServer._serve(fn, request)
