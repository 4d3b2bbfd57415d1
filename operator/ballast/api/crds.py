"""Render CustomResourceDefinitions from the API models (``make manifests``).

pydantic emits JSON Schema (draft 2020-12); the API server wants a *structural* OpenAPI v3 schema:
no ``$ref``, no ``anyOf`` with ``null`` for optional fields, boolean ``exclusiveMinimum``, and a
``type`` on every node. This module performs exactly that translation and nothing else, so the models
stay the single source of truth. Defaults are deliberately not rendered: tier defaults differ per tier
and are applied by the models, so the API server must not fill in a generic value.

Usage: ``python -m ballast.api.crds OUTPUT_DIR`` writes one ``<group>_<plural>.yaml`` per kind.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from ballast.api.common import GROUP, VERSION, ApiModel, ApiResource
from ballast.api.release import Release
from ballast.api.releasepolicy import ReleasePolicy
from ballast.api.serviceownership import ServiceOwnership

KINDS: tuple[type[ApiResource], ...] = (ReleasePolicy, ServiceOwnership, Release)

_DROPPED_KEYWORDS = {"title", "default", "examples", "$defs"}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$ref`` and unwrap ``Optional`` so each node describes exactly one type."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    for junctor in ("anyOf", "allOf"):
        options = node.get(junctor)
        if options is None:
            continue
        concrete = [o for o in options if o.get("type") != "null"]
        if len(concrete) != 1:
            raise ValueError(f"cannot express {junctor} with {len(concrete)} non-null options structurally")
        rest = {k: v for k, v in node.items() if k != junctor}
        resolved = _resolve(concrete[0], defs)
        # The outer node's description (the field's docstring) is more specific than the type's.
        return {**resolved, **rest}
    return node


def _translated(key: str, value: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """One keyword of a pydantic JSON-schema node as structural OpenAPI v3 keywords (none when dropped)."""
    if key in _DROPPED_KEYWORDS:
        return {}
    if key == "properties":
        return {key: {name: structural(sub, defs) for name, sub in value.items()}}
    if key == "items":
        return {key: structural(value, defs)}
    if key == "additionalProperties":
        return {key: structural(value, defs)} if isinstance(value, dict) else {}
    if key == "exclusiveMinimum":
        return {"minimum": value, "exclusiveMinimum": True}
    if key == "exclusiveMaximum":
        return {"maximum": value, "exclusiveMaximum": True}
    if key == "const":
        return {"enum": [value]}
    return {key: value}


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Translate one pydantic JSON-schema node into a structural OpenAPI v3 schema node."""
    out: dict[str, Any] = {}
    for key, value in _resolve(node, defs).items():
        out.update(_translated(key, value, defs))
    if "type" not in out:
        if "enum" in out:
            out["type"] = "string"
        elif "properties" in out or "additionalProperties" in out:
            out["type"] = "object"
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "description" in out:
        out["description"] = " ".join(out["description"].replace("``", "`").split())
    return out


def openapi_schema(kind: type[ApiModel]) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of a kind: its spec and status plus the standard object fields."""
    schema = kind.model_json_schema(by_alias=True, mode="validation")
    defs = schema.get("$defs", {})
    body = structural(schema, defs)
    body["properties"] = {
        "apiVersion": {"type": "string", "description": "Versioned schema of this object."},
        "kind": {"type": "string", "description": "REST resource this object represents."},
        "metadata": {"type": "object"},
        **body["properties"],
    }
    return body


def custom_resource_definition(kind: type[ApiResource]) -> dict[str, Any]:
    """The complete CustomResourceDefinition object of a kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "ballast", "app.kubernetes.io/part-of": "ballast"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": kind.short_names,
                "categories": ["ballast"],
            },
            "scope": kind.scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.printer_columns,
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                }
            ],
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Repeated sub-schemas are written out in full: anchors make CRDs hard to read and diff."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> dict[str, str]:
    """File name -> YAML text for every kind."""
    header = "# Generated by `make manifests` from operator/ballast/api. Do not edit.\n"
    return {
        f"{GROUP}_{kind.plural}.yaml": header
        + yaml.dump(custom_resource_definition(kind), Dumper=_NoAliasDumper, sort_keys=False, width=100)
        for kind in KINDS
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m ballast.api.crds OUTPUT_DIR", file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out_dir / name).write_text(text)
        print(f"wrote {out_dir / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
