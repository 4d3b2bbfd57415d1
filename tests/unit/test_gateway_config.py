"""The simulated Gateway's pure core (tests/harness/gateway.py): HTTPRoutes, Services and Endpoints in,
an HAProxy configuration out; and that configuration run by the real HAProxy against demo apps on this
machine (no cluster), so the split and the failure answers are HAProxy's own, not only our text."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.harness import gateway, require_binary, wait_for
from tests.harness.binomial import acceptance_range
from tests.harness.gateway import Backend, Match, Rule
from tests.unit.test_demo_app import app

NS = "shop"


@given(st.lists(st.integers(min_value=0, max_value=1_000_000), min_size=1, max_size=16))
def test_every_weight_owns_exactly_as_many_draws_as_its_weight_without_gaps(weights: list[int]) -> None:
    ranges = gateway.draw_ranges(weights)
    drawn = [r for r in ranges if r is not None]
    assert [r is None for r in ranges] == [w == 0 for w in weights]
    assert [high - low + 1 for low, high in drawn] == [w for w in weights if w > 0]
    # Contiguous and covering [0, sum): each draw in rand(sum) belongs to exactly one backendRef.
    assert [low for low, _ in drawn] == [0, *(high + 1 for _, high in drawn[:-1])][:len(drawn)]
    assert (drawn[-1][1] + 1 if drawn else 0) == sum(weights)


def service(name: str, *ports: tuple[str, int]) -> dict:
    return {"metadata": {"namespace": NS, "name": name},
            "spec": {"ports": [{"name": n, "port": p} for n, p in ports] if ports else [{"port": 80}]}}


def endpoints(name: str, ips: list[str], port: int = 8080, port_name: str = "") -> dict:
    subset = {"addresses": [{"ip": ip} for ip in ips],
              "ports": [{"port": port, **({"name": port_name} if port_name else {})}]}
    return {"metadata": {"namespace": NS, "name": name}, "subsets": [subset] if ips else []}


def route(name: str, *refs: dict, hostnames: list[str] | None = None, matches: list[dict] | None = None) -> dict:
    rule = {"backendRefs": list(refs), **({"matches": matches} if matches else {})}
    return {"metadata": {"namespace": NS, "name": name}, "spec": {"hostnames": hostnames or [], "rules": [rule]}}


def by_key(*objects: dict) -> dict[tuple[str, str], dict]:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}


def test_backend_refs_resolve_to_ready_endpoints_or_to_the_reason_they_cannot() -> None:
    services = by_key(service("stable"), service("canary"), service("named", ("web", 80), ("admin", 9000)))
    eps = by_key(endpoints("stable", ["10.88.0.3", "10.88.0.2"]), endpoints("canary", []),
                 endpoints("named", ["10.88.0.9"], port=8080, port_name="web"))
    refs = [{"name": "stable", "port": 80, "weight": 90}, {"name": "canary", "port": 80, "weight": 10},
            {"name": "named", "port": 80}, {"name": "named", "port": 81}, {"name": "gone", "port": 80},
            {"name": "stable"}, {"name": "stable", "port": 80, "namespace": "other"},
            {"name": "stable", "port": 80, "kind": "Bucket", "group": "storage.example.com"}]
    [rule] = gateway.resolve_rules([route("r", *refs)], services, eps)
    assert rule.route == f"{NS}/r" and rule.matches == (Match("", "PathPrefix", "/"),)
    stable, canary, named, wrong_port, gone, no_port, elsewhere, not_service = rule.backends
    assert stable == Backend(f"{NS}/stable:80", 90, ("10.88.0.2:8080", "10.88.0.3:8080"))
    assert canary == Backend(f"{NS}/canary:80", 10, ())  # no ready endpoints: valid, and answered 503
    assert named.servers == ("10.88.0.9:8080",) and named.weight == 1  # Gateway API's default weight
    assert wrong_port.invalid == "Service port 81 does not exist"
    assert gone.invalid == f"Service {NS}/gone does not exist"
    assert no_port.invalid == "a backendRef to a Service needs a port"
    assert "ReferenceGrant" in elsewhere.invalid and "is not a Service" in not_service.invalid


def test_matches_multiply_hostnames_by_paths_and_the_most_specific_comes_first(tmp_path: Path) -> None:
    rules = gateway.resolve_rules([
        route("any", {"name": "a", "port": 80}),
        route("prefix", {"name": "b", "port": 80}, hostnames=["Shop.example.com", "*.example.com"],
              matches=[{"path": {"type": "PathPrefix", "value": "/cart/"}}, {"path": {"type": "Exact", "value": "/"}}]),
    ], {}, {})
    assert rules[1].matches == (
        Match("shop.example.com", "PathPrefix", "/cart/"), Match("shop.example.com", "Exact", "/"),
        Match("*.example.com", "PathPrefix", "/cart/"), Match("*.example.com", "Exact", "/"))
    config = gateway.render(rules, "127.0.0.1:1", tmp_path)
    picks = [line.split(" if ")[1] for line in config.splitlines() if "set-var(txn.rule)" in line]
    host = gateway.HOST_FETCH
    assert picks == [f"{{ {host} -m str shop.example.com }} {{ path -m str / }} !{{ var(txn.rule) -m found }}",
                     f"{{ {host} -m str shop.example.com }} {{ path -m str /cart }} !{{ var(txn.rule) -m found }}",
                     f"{{ {host} -m str shop.example.com }} {{ path_beg /cart/ }} !{{ var(txn.rule) -m found }}",
                     f"{{ {host} -m end .example.com }} {{ path -m str / }} !{{ var(txn.rule) -m found }}",
                     f"{{ {host} -m end .example.com }} {{ path -m str /cart }} !{{ var(txn.rule) -m found }}",
                     f"{{ {host} -m end .example.com }} {{ path_beg /cart/ }} !{{ var(txn.rule) -m found }}",
                     "{ path_beg / } !{ var(txn.rule) -m found }"]
    assert "set-var(txn.rule) int(1)" in config.split("path_beg / }")[0]  # the specific route's rule wins


def test_the_same_cluster_renders_the_same_text(tmp_path: Path) -> None:
    """The controller reloads HAProxy only when the text changes, so rendering must be deterministic."""
    def rendered(order: list[str]) -> str:
        eps = endpoints("stable", order)
        routes = [route(n, {"name": "stable", "port": 80}) for n in ("b", "a")]
        return gateway.render(gateway.resolve_rules(routes, by_key(service("stable")), by_key(eps)), "127.0.0.1:1",
                              tmp_path)
    assert rendered(["10.88.0.2", "10.88.0.3"]) == rendered(["10.88.0.3", "10.88.0.2"])


# -- the rendered configuration, run by HAProxy ------------------------------------------------------


@pytest.fixture
def demo_apps() -> Iterator[dict[str, str]]:
    """Three demo apps on loopback: two of version v1, one v2; version -> 'ip:port' list."""
    servers = [app.DemoServer(("127.0.0.1", 0), 0.0, version) for version in ("v1", "v1", "v2")]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {version: [f"127.0.0.1:{s.server_port}" for s in servers if s.version == version] for version in ("v1", "v2")}
    for server in servers:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serve(rules: list[Rule], state_dir: Path) -> Iterator[str]:
    haproxy = require_binary("haproxy", "haproxy")
    port = gateway.free_port()
    config = state_dir / "haproxy.cfg"
    config.write_text(gateway.render(rules, f"127.0.0.1:{port}", state_dir))
    checked = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0 and "WARNING" not in checked.stderr, checked.stderr
    process = subprocess.Popen([haproxy, "-W", "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(url + "/")[0] != 0, 10, "HAProxy never listened")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def get(url: str, host: str = "shop.example.com") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=2) as answer:
            return answer.status, answer.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()
    except OSError:
        return 0, ""


def test_haproxy_splits_one_in_a_thousand_exactly_and_answers_for_broken_backends(demo_apps, tmp_path) -> None:
    rules = [
        Rule(f"{NS}/split", 0, (Match("", "PathPrefix", "/split"),),
             (Backend("stable", 999, tuple(demo_apps["v1"])), Backend("canary", 1, tuple(demo_apps["v2"])),
              Backend("off", 0, tuple(demo_apps["v2"])))),
        Rule(f"{NS}/broken", 0, (Match("", "Exact", "/broken"),),
             (Backend("gone", 1, invalid="Service shop/gone does not exist"), Backend("empty", 3, ()))),
        Rule(f"{NS}/zero", 0, (Match("shop.example.com", "PathPrefix", "/zero"),),
             (Backend("off", 0, ("127.0.0.1:9",)),)),
        Rule(f"{NS}/host", 0, (Match("*.example.com", "PathPrefix", "/only-here"),),
             (Backend("stable", 1, tuple(demo_apps["v1"])),)),
    ]
    with serve(rules, tmp_path) as url:
        n = 4000
        split = Counter(get(f"{url}/split/x")[1] for _ in range(n))
        assert set(split) <= {"recommendations v1: 200", "recommendations v2: 200"}, split
        low, high = acceptance_range(n, 1 / 1000)
        assert low <= split["recommendations v2: 200"] <= high, split  # 1 in 1000, not 1 in 3 endpoints
        broken = Counter(get(f"{url}/broken")[0] for _ in range(400))
        assert set(broken) == {500, 503}, broken  # each share answered for, never sent elsewhere
        low, high = acceptance_range(400, 0.75)
        assert low <= broken[503] <= high, broken
        assert get(f"{url}/zero")[0] == 500  # every weight 0
        assert get(f"{url}/only-here", host="a.example.com:8080")[1] == "recommendations v1: 200"
        assert get(f"{url}/only-here", host="example.org")[0] == 404  # no rule matches
        assert get(f"{url}/splitting")[0] == 404  # a prefix matches whole path elements
