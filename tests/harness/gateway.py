"""A simulated Gateway controller: HTTPRoutes in the local API server, served by a real HAProxy.

Test-only (never in the product package). Ballast writes the weights of an HTTPRoute's backendRefs
(`gateway.networking.k8s.io/v1`); this controller is the data plane that honours them, whoever wrote
them, so tests and benchmarks can send real requests and count where they went. It watches HTTPRoutes,
Services and Endpoints, resolves every backendRef to its Service's ready endpoints (pod IPs on the real
node's bridge, reachable from the host), renders one HAProxy configuration and hot-reloads HAProxy
(master-worker mode, SIGUSR2 to the master; listeners handed over through `expose-fd listeners`) when it
changes. See README.md ("A Gateway data plane") for what a real Gateway implementation does that this
one does not.

How a rule's traffic is split, and why that way (`render`): HAProxy server weights are integers 0-256
per server, and Gateway API weights go up to 1,000,000 per backendRef, spread over however many
endpoints each Service has. Balancing by server weight would have to round each backendRef's share
onto its endpoints (1 vs 999 over three endpoints has no exact 0-256 representation), so it is not
used. Instead the split is two-level: the frontend draws one integer per request, uniformly in
[0, sum of the rule's weights) with HAProxy's `rand(<range>)`, and each backendRef owns a contiguous
range of draws exactly as long as its weight (`draw_ranges`), so its probability is weight / sum with
no rounding at all; its own backend then spreads its share evenly over its endpoints (roundrobin), as
Gateway API asks ("weight / sum of weights" per backendRef, endpoints alike within a Service).

What a backendRef that cannot carry its share gets, per the Gateway API specification: its share of
requests is answered 500 when the reference is invalid (no such Service, or the port is not one of the
Service's), 503 when the Service has no ready endpoints (a backend with no servers), and never sent
anywhere else; a weight of 0 gets no requests; a rule whose weights are all 0 answers 500. A request no
rule matches is answered 404.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import urllib3
from kubernetes import watch

from tests.harness import wait_for
from tests.harness.kubectl import kubectl

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
HTTPROUTE_CRD = Path(__file__).resolve().parents[1] / "integration" / "data" / "gateway-api-httproute-v1.yaml"
"""The HTTPRoute v1 CRD the tests use, written from the Gateway API specification."""
HOST_FETCH = "req.hdr(host),field(1,:),lower"
"""The request's host without a port, as HTTPRoute hostnames are matched."""


class GatewayError(Exception):
    """HAProxy could not be started or reloaded with the rendered configuration (the message has why)."""


# -- the pure core: resources in, HAProxy configuration out ------------------------------------------


@dataclass(frozen=True)
class Backend:
    """One backendRef of a rule, resolved: its weight and the endpoints that carry its share."""

    service: str
    """`namespace/name:port`, for people reading the configuration."""
    weight: int
    servers: tuple[str, ...] = ()
    """`ip:port` of each ready endpoint."""
    invalid: str = ""
    """Why the reference cannot be resolved (its share is then answered 500); empty when it can."""


@dataclass(frozen=True)
class Match:
    """Where a rule applies: one hostname pattern (empty: any) and one path match."""

    hostname: str
    path_type: str
    """`Exact` or `PathPrefix` (RegularExpression is left out: see README)."""
    path: str


@dataclass(frozen=True)
class Rule:
    route: str
    """`namespace/name` of the HTTPRoute."""
    index: int
    matches: tuple[Match, ...]
    backends: tuple[Backend, ...]


def draw_ranges(weights: Iterable[int]) -> list[tuple[int, int] | None]:
    """Each weight's inclusive range of draws in [0, sum of weights): as many draws as its weight, in
    order, without gaps; None for a weight of 0 (it is never drawn)."""
    ranges: list[tuple[int, int] | None] = []
    start = 0
    for weight in weights:
        ranges.append((start, start + weight - 1) if weight > 0 else None)
        start += weight
    return ranges


def _endpoint_servers(service: dict[str, Any], endpoints: dict[str, Any] | None, port: int) -> tuple[str, ...] | str:
    """The ready `ip:port`s behind one port of a Service, or why that port is not one of its ports."""
    ports = [p for p in service.get("spec", {}).get("ports") or [] if p.get("port") == port]
    if not ports:
        return f"Service port {port} does not exist"
    port_name = ports[0].get("name") or ""
    servers: list[str] = []
    for subset in (endpoints or {}).get("subsets") or []:
        target = [p["port"] for p in subset.get("ports") or [] if (p.get("name") or "") == port_name]
        servers += [f"{address['ip']}:{target[0]}" for address in subset.get("addresses") or [] if target]
    return tuple(sorted(servers))


def resolve_backend(namespace: str, ref: dict[str, Any], services: dict[tuple[str, str], dict[str, Any]],
                    endpoints: dict[tuple[str, str], dict[str, Any]]) -> Backend:
    """A backendRef (with the API server's defaults applied) against the cluster's Services and Endpoints."""
    ref_namespace = ref.get("namespace") or namespace
    key = (ref_namespace, ref["name"])
    label = f"{ref_namespace}/{ref['name']}:{ref.get('port', '')}"
    weight = int(ref.get("weight", 1))
    if (ref.get("group") or "") != "" or ref.get("kind", "Service") != "Service":
        return Backend(label, weight, invalid=f"backendRef kind {ref.get('group')}/{ref.get('kind')} is not a Service")
    if ref_namespace != namespace:
        # A real Gateway needs a ReferenceGrant for this; this one has none, so it refuses as one would.
        return Backend(label, weight, invalid="a backendRef to another namespace needs a ReferenceGrant")
    if key not in services:
        return Backend(label, weight, invalid=f"Service {key[0]}/{key[1]} does not exist")
    if "port" not in ref:
        return Backend(label, weight, invalid="a backendRef to a Service needs a port")
    servers = _endpoint_servers(services[key], endpoints.get(key), int(ref["port"]))
    if isinstance(servers, str):
        return Backend(label, weight, invalid=servers)
    return Backend(label, weight, servers)


def _matches(hostnames: list[str], rule: dict[str, Any]) -> tuple[Match, ...]:
    paths = [m.get("path") or {"type": "PathPrefix", "value": "/"} for m in rule.get("matches") or [{}]]
    return tuple(Match(hostname.lower(), path.get("type", "PathPrefix"), path.get("value", "/"))
                 for hostname in hostnames or [""] for path in paths)


def resolve_rules(routes: list[dict[str, Any]], services: dict[tuple[str, str], dict[str, Any]],
                  endpoints: dict[tuple[str, str], dict[str, Any]]) -> list[Rule]:
    """Every rule of every route, its backendRefs resolved; routes in a stable order (namespace, name)."""
    rules: list[Rule] = []
    for route in sorted(routes, key=lambda r: (r["metadata"]["namespace"], r["metadata"]["name"])):
        namespace = route["metadata"]["namespace"]
        spec = route.get("spec") or {}
        for index, rule in enumerate(spec.get("rules") or []):
            backends = tuple(resolve_backend(namespace, ref, services, endpoints)
                             for ref in rule.get("backendRefs") or [])
            rules.append(Rule(f"{namespace}/{route['metadata']['name']}", index,
                              _matches(spec.get("hostnames") or [], rule), backends))
    return rules


def _precedence(entry: tuple[int, Match]) -> tuple[int, int, int, int]:
    """Gateway API's order among matches, as far as this controller matches: a hostname before none
    (exact before wildcard), an Exact path before a prefix, a longer path first, then route order."""
    position, match = entry
    host_rank = 2 if not match.hostname else 1 if match.hostname.startswith("*.") else 0
    return host_rank, 0 if match.path_type == "Exact" else 1, -len(match.path), position


def _conditions(match: Match) -> list[str]:
    """HAProxy conditions (each one alone is enough) for a match."""
    if match.path_type not in ("Exact", "PathPrefix"):
        return []  # left out: never matches here (see README)
    if match.hostname.startswith("*."):
        host = f"{{ {HOST_FETCH} -m end {match.hostname[1:]} }} "
    else:
        host = f"{{ {HOST_FETCH} -m str {match.hostname} }} " if match.hostname else ""
    path = match.path.rstrip("/") or "/"
    if match.path_type == "Exact":
        return [f"{host}{{ path -m str {match.path} }}"]
    if path == "/":
        return [f"{host}{{ path_beg / }}"]
    # A prefix matches whole path elements: /shop matches /shop and /shop/cart, not /shopping.
    return [f"{host}{{ path -m str {path} }}", f"{host}{{ path_beg {path}/ }}"]


def _backend_section(name: str, backend: Backend) -> list[str]:
    lines = [f"backend {name}", f"    # {backend.service} weight {backend.weight}"]
    if backend.invalid:
        reason = backend.invalid.replace('"', "'")
        return [*lines, f'    http-request return status 500 content-type text/plain string "{reason}\\n"']
    # No servers: HAProxy answers 503 itself, which is what Gateway API asks for a Service without endpoints.
    return [*lines, "    balance roundrobin",
            *(f"    server endpoint{i} {server}" for i, server in enumerate(backend.servers))]


def render(rules: list[Rule], bind: str, state_dir: Path) -> str:
    """The whole HAProxy configuration for `rules`, listening on `bind` (`host:port`). Deterministic: the
    same rules always give the same text, so an unchanged cluster never reloads HAProxy."""
    sockets = state_dir / "haproxy-admin.sock"
    front = [f"    bind {bind}"]
    sections: list[str] = []
    entries = sorted(((position, match) for position, rule in enumerate(rules) for match in rule.matches),
                     key=_precedence)
    for position, match in entries:
        front += [f"    http-request set-var(txn.rule) int({position}) if {condition} !{{ var(txn.rule) -m found }}"
                  for condition in _conditions(match)]
    # HAProxy runs every http-request rule before any use_backend rule, so the draws come first.
    choices: list[str] = []
    for position, rule in enumerate(rules):
        chosen = f"{{ var(txn.rule) -m int {position} }}"
        total = sum(b.weight for b in rule.backends)
        choices.append(f"    # rule {position}: {rule.route} rules[{rule.index}], weights sum {total}")
        if total == 0:
            choices.append(f"    use_backend no_weight if {chosen}")
            continue
        front.append(f"    http-request set-var(txn.draw) rand({total}) if {chosen}")
        for ref, (backend, drawn) in enumerate(zip(rule.backends, draw_ranges(b.weight for b in rule.backends),
                                                   strict=True)):
            if drawn is None:
                continue
            name = f"rule{position}_ref{ref}"
            choices.append(f"    use_backend {name} if {chosen} {{ var(txn.draw) -m int {drawn[0]}:{drawn[1]} }}")
            sections += ["", *_backend_section(name, backend)]
    return "\n".join([
        "# Rendered by tests/harness/gateway.py from the cluster's HTTPRoutes; do not edit.",
        "global",
        f"    stats socket {sockets} mode 600 level admin expose-fd listeners",
        "    hard-stop-after 10s",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 10s",
        "    timeout server 10s",
        "",
        "frontend gateway",
        *front,
        *choices,
        "    default_backend no_route",
        "",
        "backend no_route",
        '    http-request return status 404 content-type text/plain string "no HTTPRoute rule matches\\n"',
        "",
        "backend no_weight",
        '    http-request return status 500 content-type text/plain string "every backendRef has weight 0\\n"',
        *sections,
        "",
    ])


# -- the imperative shell: watch, render, reload ------------------------------------------------------


def install_httproute_crd(kubeconfig: str) -> None:
    """Apply the HTTPRoute CRD (idempotent) and wait until the API server serves it."""
    applied = kubectl(kubeconfig, "apply", "-f", str(HTTPROUTE_CRD), check=False)
    if applied.returncode != 0:
        raise GatewayError(f"the HTTPRoute CRD {HTTPROUTE_CRD} was not applied: {applied.stderr}")
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=30s",
            "crd/httproutes.gateway.networking.k8s.io")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Applied:
    generation: int
    at: float
    """time.monotonic() when HAProxy's new worker was serving this configuration."""
    rules: tuple[Rule, ...]


class GatewayController:
    """`with GatewayController(kubeconfig, state_dir) as gateway:` serves every HTTPRoute at `gateway.url`.

    Runs in the caller's process (threads) with HAProxy as its child, stopped (and waited for) on exit.
    `applied` is the configuration HAProxy serves now; `wait_applied(predicate)` waits for one.
    """

    def __init__(self, kubeconfig: str, state_dir: Path, port: int | None = None, haproxy: str = "haproxy",
                 resync_seconds: float = 5.0) -> None:
        self.kubeconfig = kubeconfig
        self.state_dir = state_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.haproxy = haproxy
        self.resync_seconds = resync_seconds
        self.config_path = state_dir / "haproxy.cfg"
        self.master_socket = state_dir / "haproxy-master.sock"
        self.log_path = state_dir / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.applied: Applied | None = None
        self.history: list[Applied] = []
        """Every configuration HAProxy served, in order: which weights carried the requests sent when."""
        self.errors: list[str] = []
        """Configurations HAProxy refused and failed reloads: a test asserts there are none."""
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._threads: list[threading.Thread] = []
        self._changed = threading.Condition()

    def __enter__(self) -> GatewayController:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # lifecycle

    def start(self, timeout: float = 30.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        rules = self._resolve()
        self._write_config(render(rules, f"127.0.0.1:{self.port}", self.state_dir))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.haproxy, "-W", "-db", "-S", str(self.master_socket), "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._workers_or_exit, timeout, f"HAProxy never started a worker (log {self.log_path})")
        self._set_applied(rules)
        self._threads = [threading.Thread(target=self._reconcile_loop, name="gateway-reconcile", daemon=True)]
        self._threads += [threading.Thread(target=self._watch, args=(kind,), name=f"gateway-watch-{kind}",
                                           daemon=True) for kind in ("httproutes", "services", "endpoints")]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop reconciling, then HAProxy's master (which stops its workers), and wait for it to exit."""
        self._stop.set()
        self._dirty.set()
        for thread in self._threads:
            thread.join(timeout)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_applied(self, predicate: Callable[[Applied], bool], timeout: float, message: str) -> Applied:
        """The first configuration HAProxy serves for which `predicate` holds (waits on a condition variable)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.applied is None or not predicate(self.applied):
                left = deadline - time.monotonic()
                if left <= 0 or not self.running():
                    raise TimeoutError(f"{message} (waited {timeout:g}s; serving {self.applied}; "
                                       f"errors {self.errors})")
                self._changed.wait(left)
            return self.applied

    def weights(self, route: str, rule: int = 0, applied: Applied | None = None) -> dict[str, tuple[int, int]]:
        """What HAProxy serves (now, or in `applied`) for one rule: backend Service -> (weight, ready endpoints)."""
        applied = applied or self.applied
        for resolved in applied.rules if applied else ():
            if resolved.route == route and resolved.index == rule:
                return {b.service: (b.weight, len(b.servers)) for b in resolved.backends}
        return {}

    # HAProxy

    def _write_config(self, config: str) -> None:
        """Replace the configuration file with `config` if HAProxy accepts it (the old one stays otherwise)."""
        candidate = self.config_path.with_suffix(".new")
        candidate.write_text(config)
        checked = subprocess.run([self.haproxy, "-c", "-q", "-f", str(candidate)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise GatewayError(f"HAProxy refuses the configuration rendered from the HTTPRoutes in {candidate}: "
                               f"{checked.stdout}{checked.stderr}")
        candidate.replace(self.config_path)

    def _master(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(2)
            conn.connect(str(self.master_socket))
            conn.sendall(command.encode() + b"\n")
            conn.shutdown(socket.SHUT_WR)  # one command: the master answers and closes
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def workers(self) -> set[int]:
        """Pids of HAProxy's current workers (not the old ones finishing their requests)."""
        try:
            shown = self._master("show proc")
        except OSError:
            return set()  # the master re-executes itself while it reloads
        current = shown.split("# old workers")[0]
        return {int(line.split()[0]) for line in current.splitlines()
                if len(line.split()) > 1 and line.split()[1] == "worker"}

    def _workers_or_exit(self) -> set[int]:
        if not self.running():
            raise GatewayError(f"HAProxy exited; see {self.log_path}")
        return self.workers()

    def _reload(self, rules: list[Rule], config: str) -> None:
        before = self.workers()
        self._write_config(config)
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGUSR2)

        def replaced() -> bool:
            workers = self._workers_or_exit()
            return bool(workers) and not workers & before

        wait_for(replaced, 20, f"HAProxy never replaced its workers {before} after a reload (log {self.log_path})")
        self._set_applied(rules)

    def _set_applied(self, rules: list[Rule]) -> None:
        with self._changed:
            generation = self.applied.generation + 1 if self.applied else 1
            self.applied = Applied(generation, time.monotonic(), tuple(rules))
            self.history.append(self.applied)
            self._changed.notify_all()

    # Kubernetes

    def _api(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=self.kubeconfig)

    def _resolve(self) -> list[Rule]:
        api = self._api()
        core = kubernetes.client.CoreV1Api(api)
        try:
            routes = kubernetes.client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            routes = []  # the HTTPRoute CRD is not installed: nothing to serve
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                    for s in api.sanitize_for_serialization(core.list_service_for_all_namespaces().items)}
        endpoints = {(e["metadata"]["namespace"], e["metadata"]["name"]): e
                     for e in api.sanitize_for_serialization(core.list_endpoints_for_all_namespaces().items)}
        return resolve_rules(routes, services, endpoints)

    def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(self.resync_seconds)
            self._dirty.clear()
            if self._stop.is_set():
                return
            try:
                rules = self._resolve()
                config = render(rules, f"127.0.0.1:{self.port}", self.state_dir)
                if config != self.config_path.read_text():
                    self._reload(rules, config)
            except (GatewayError, TimeoutError, kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as exc:
                if not self.errors or self.errors[-1] != str(exc):  # a refused configuration is retried
                    self.errors.append(str(exc))

    def _watch(self, kind: str) -> None:
        """Mark the configuration dirty on every change of `kind` (a fresh watch every few seconds, so
        stop() is prompt and a lost watch is replaced)."""
        api = self._api()
        lists = {"httproutes": (kubernetes.client.CustomObjectsApi(api).list_cluster_custom_object,
                                (GROUP, VERSION, PLURAL)),
                 "services": (kubernetes.client.CoreV1Api(api).list_service_for_all_namespaces, ()),
                 "endpoints": (kubernetes.client.CoreV1Api(api).list_endpoints_for_all_namespaces, ())}
        list_fn, args = lists[kind]
        resource_version = ""
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for _event in stream.stream(list_fn, *args, resource_version=resource_version, timeout_seconds=2,
                                            _request_timeout=10):
                    self._dirty.set()
                    if self._stop.is_set():
                        return
                resource_version = stream.resource_version or ""
            except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError):
                resource_version = ""  # expired (410) or lost: list again; the resync covers the gap
                self._stop.wait(0.5)
