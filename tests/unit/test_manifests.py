"""The committed CRDs are exactly what the models generate, and the examples parse with the models."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ballast.api import ReleasePolicy, ServiceOwnership
from ballast.api.crds import render

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS = {"ReleasePolicy": ReleasePolicy, "ServiceOwnership": ServiceOwnership}


@pytest.mark.parametrize("name", sorted(render()))
def test_committed_crd_matches_models(name):
    text = render()[name]
    committed = REPO_ROOT / "crds" / name
    assert committed.exists(), f"crds/{name} is missing: run `make manifests`"
    assert committed.read_text() == text, f"crds/{name} is stale: run `make manifests` and commit the result"


def test_no_stray_crd_files():
    assert sorted(p.name for p in (REPO_ROOT / "crds").glob("*.yaml")) == sorted(render())


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize("name", sorted(render()))
def test_schemas_are_structural(name):
    schema = yaml.safe_load(render()[name])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node and "default" not in node
        if "properties" in node or "items" in node:
            assert node.get("type") in {"object", "array"}


def test_examples_parse_with_the_models():
    seen = set()
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            model = MODELS.get(doc["kind"])
            if model is not None:
                model.model_validate(doc)
                seen.add(doc["kind"])
    assert seen == set(MODELS)
