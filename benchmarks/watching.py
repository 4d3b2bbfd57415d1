"""What the release benchmarks share: every Deployment and Release event of the cluster, stamped on
receipt, the moments of a rollback read from them, the reaction and false-rollback tables, and whether
Ballast holds a Deployment.

Used by release_numbers (simulated pods) and real_releases (real pods on the local node): both define
reaction the same way, from the first Release event with phase ``RollingBack`` (the operator records the
Fail verdict and that phase in one status write, before it acts) to the later of the canary Deployment's
``DELETED`` event and the first stable Deployment event with the old template back and ``spec.paused``
false.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import kubernetes

from ballast.api.common import GROUP, VERSION
from benchmarks.admission_latency import delta, histogram_quantile, percentile
from tests.integration.releasing import FINAL

T = TypeVar("T")

RELEASE_TIMEOUT = 180.0  # one release, from the change to a final phase
ACTUATION_METRIC = "ballast_rollback_actuation_seconds"
TARGET_REACTION_S = 1.0


@dataclass(frozen=True)
class Seen:
    """One watch event, stamped with the wall-clock time it reached this process."""

    at: float
    kind: str  # "Deployment" or "Release"
    type: str  # ADDED, MODIFIED, DELETED
    namespace: str
    name: str
    body: dict[str, Any]


class ClusterWatch:
    """Every Deployment and Release event of the cluster, recorded on receipt; waits on a condition.

    Two threads run ``watch.Watch().stream`` (raw JSON, no model deserialisation), each resuming from the
    last resourceVersion it saw; a 410 (history compacted) makes it list again. ``wait`` re-evaluates a
    predicate whenever an event arrives, so nothing polls.
    """

    def __init__(self, kubeconfig: str) -> None:
        self.events: list[Seen] = []
        self.latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.relists = 0
        self._kubeconfig = kubeconfig
        self._cond = threading.Condition()  # its lock is reentrant: helpers may lock inside a predicate
        self._stop = threading.Event()
        self._listed = {kind: threading.Event() for kind in ("Deployment", "Release")}
        self._error: BaseException | None = None
        self._threads = [threading.Thread(target=self._run, args=(kind,), name=f"watch-{kind}", daemon=True)
                         for kind in self._listed]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        for kind, listed in self._listed.items():
            if not listed.wait(30):
                raise TimeoutError(f"the {kind} watch never listed: {self._error!r}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _endpoint(self, api: kubernetes.client.ApiClient, kind: str) -> tuple[Callable[..., Any], tuple[str, ...]]:
        if kind == "Deployment":
            return kubernetes.client.AppsV1Api(api).list_deployment_for_all_namespaces, ()
        return kubernetes.client.CustomObjectsApi(api).list_cluster_custom_object, (GROUP, VERSION, "releases")

    def _run(self, kind: str) -> None:
        try:
            api = kubernetes.config.new_client_from_config(config_file=self._kubeconfig)
            func, args = self._endpoint(api, kind)
            version: str | None = None
            while not self._stop.is_set():
                if version is None:
                    listing = json.loads(func(*args, _preload_content=False).data)
                    with self._cond:
                        for key in [k for k in self.latest if k[0] == kind]:
                            del self.latest[key]
                        for item in listing["items"]:
                            meta = item["metadata"]
                            self.latest[(kind, meta["namespace"], meta["name"])] = item
                        self._cond.notify_all()
                    version = listing["metadata"]["resourceVersion"]
                    self._listed[kind].set()
                try:
                    for event in kubernetes.watch.Watch().stream(
                            func, *args, resource_version=version, timeout_seconds=5, deserialize=False,
                            allow_watch_bookmarks=True):
                        at = time.time()
                        body = event["object"]
                        version = body["metadata"]["resourceVersion"]
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            self._record(Seen(at, kind, event["type"], body["metadata"]["namespace"],
                                              body["metadata"]["name"], body))
                        if self._stop.is_set():
                            break
                except kubernetes.client.ApiException as error:
                    if error.status != 410:
                        raise
                    version = None  # compacted: list again (events in the gap are lost, and counted)
                    with self._cond:
                        self.relists += 1
        except BaseException as error:
            if not self._stop.is_set():
                with self._cond:
                    self._error = error
                    self._cond.notify_all()

    def _record(self, seen: Seen) -> None:
        with self._cond:
            self.events.append(seen)
            key = (seen.kind, seen.namespace, seen.name)
            if seen.type == "DELETED":
                self.latest.pop(key, None)
            else:
                self.latest[key] = seen.body
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def since(self, mark: int) -> list[Seen]:
        with self._cond:
            return self.events[mark:]

    def wait(self, predicate: Callable[[], T], timeout: float, message: str) -> T:
        """Evaluate ``predicate`` (in memory only: it runs under the lock) on every event until truthy."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._error is not None:
                    raise RuntimeError(f"a watch failed: {self._error!r}") from self._error
                if result := predicate():
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{message} (waited {timeout:g}s)")
                self._cond.wait(remaining)

    def release_of(self, namespace: str, deployment_name: str, image: str) -> dict[str, Any] | None:
        """The newest Release of the change of ``deployment_name`` to ``image``."""
        with self._cond:
            found = [body for (kind, ns, _), body in self.latest.items()
                     if kind == "Release" and ns == namespace
                     and body["spec"].get("deployment") == deployment_name and body["spec"].get("toImages") == [image]]
        return max(found, key=lambda b: b["metadata"]["creationTimestamp"] + b["metadata"]["name"], default=None)

    def final_release(self, namespace: str, deployment_name: str, image: str) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            release = self.release_of(namespace, deployment_name, image)
            return release if phase(release) in FINAL else None
        return self.wait(ended, RELEASE_TIMEOUT, f"the release of {namespace}/{deployment_name} to {image} never ended")

    def final_release_since(self, mark: int, namespace: str, deployment_name: str) -> dict[str, Any]:
        """The first Release of ``deployment_name`` created after ``mark``, once it has ended. For changes
        that keep the image (a new env): release_of() tells releases apart by their target image only."""
        def ended() -> dict[str, Any] | None:
            name = next((e.name for e in self.since(mark) if e.kind == "Release" and e.type == "ADDED"
                         and e.namespace == namespace and e.body["spec"].get("deployment") == deployment_name), None)
            release = self.latest.get(("Release", namespace, name)) if name else None
            return release if phase(release) in FINAL else None
        return self.wait(ended, RELEASE_TIMEOUT, f"the release of {namespace}/{deployment_name} changed after the "
                                                 "mark never ended")


def phase(release: dict[str, Any] | None) -> str:
    return ((release or {}).get("status") or {}).get("phase") or ""


def image_and_paused(body: dict[str, Any]) -> tuple[str, bool]:
    spec = body["spec"]
    return spec["template"]["spec"]["containers"][0]["image"], bool(spec.get("paused"))


@dataclass(frozen=True)
class Rollback:
    """Wall-clock moments of one rollback, as the watches saw them."""

    failed: float  # the Release first showed phase RollingBack
    canary_gone: float  # the canary Deployment's DELETED event
    restored: float  # the stable Deployment back on the old image, un-paused

    @property
    def done(self) -> float:
        return max(self.canary_gone, self.restored)


def rollback_moments(watch: ClusterWatch, mark: int, namespace: str, deployment_name: str,
                     release_name: str, restored_template: Callable[[dict[str, Any]], bool]) -> Rollback:
    """Find the rollback of ``release_name`` among the events since ``mark`` (waiting for stragglers);
    ``restored_template`` tells whether a stable Deployment body has the old pod template back."""
    def found() -> Rollback | None:
        events = watch.since(mark)
        failed = next((e.at for e in events if e.kind == "Release" and e.namespace == namespace
                       and e.name == release_name and phase(e.body) == "RollingBack"), None)
        if failed is None:
            return None
        later = [e for e in events if e.kind == "Deployment" and e.namespace == namespace and e.at >= failed]
        gone = next((e.at for e in later if e.name == f"{deployment_name}-canary" and e.type == "DELETED"), None)
        restored = next((e.at for e in later if e.name == deployment_name and e.type == "MODIFIED"
                         and not e.body["spec"].get("paused") and restored_template(e.body)), None)
        return Rollback(failed, gone, restored) if gone is not None and restored is not None else None
    return watch.wait(found, 30, f"no RollingBack -> canary deleted + template restored seen for {release_name}")



def actuation_histogram(before: dict, after: dict) -> str:
    """The operator's own rollback actuation figures over the part, or why there are none."""
    buckets = delta(before, after, f"{ACTUATION_METRIC}_bucket")
    pairs = [(float(dict(labels)["le"]), count) for labels, count in buckets.items()]
    count = max((c for _, c in pairs), default=0.0)
    if not pairs:
        return f"operator-side: the operator's /metrics has no {ACTUATION_METRIC} histogram (not measured)"
    if not count:
        return f"operator-side ({ACTUATION_METRIC}): no observations during the part"
    total = sum(delta(before, after, f"{ACTUATION_METRIC}_sum").values())
    top = min(le for le, c in pairs if c >= count)
    return (f"operator-side ({ACTUATION_METRIC}, decision to actions done, inside the operator): "
            f"{count:.0f} observations, mean {total / count * 1000:.1f} ms, "
            f"p50 ~{histogram_quantile(0.5, pairs) * 1000:.1f} ms (bucket estimate), max <= {top * 1000:g} ms")


def verdict_mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def held(apps: kubernetes.client.AppsV1Api, namespace: str, name: str) -> bool:
    """Whether a dry-run template change comes back paused (Ballast's pause webhook holds the Deployment)."""
    probe = {"spec": {"template": {"metadata": {"annotations": {"probe": "1"}}}}}
    return bool(apps.patch_namespaced_deployment(name, namespace, probe, dry_run="All").spec.paused)


@dataclass(frozen=True)
class RolledBackRelease:
    """One bad release as a reaction row: its name, outcome, verdicts and (when rolled back) its moments."""

    name: str
    outcome: str
    verdicts: str
    moments: Rollback | None


def rolled_back_release(watch: ClusterWatch, mark: int, release: dict[str, Any], deployment_name: str,
                        restored_template: Callable[[dict[str, Any]], bool]) -> RolledBackRelease:
    status, meta = release["status"], release["metadata"]
    moments = None
    if status["phase"] == "RolledBack":
        moments = rollback_moments(watch, mark, meta["namespace"], deployment_name, meta["name"], restored_template)
    return RolledBackRelease(meta["name"], f"{status['phase']}/{status.get('reason', '')}",
                             "/".join(a["verdict"] for a in status.get("analyses") or []), moments)


def report_reactions(rows: list[RolledBackRelease]) -> bool:
    """Print the reaction table and the target's PASS/MISS; False when a bad release was not rolled back."""
    print("\nReaction: failing verdict (Release phase RollingBack) -> canary deleted AND stable template "
          "restored, seen by watches\n")
    print(f"{'run':<4}{'release':<26}{'outcome':<26}{'analyses':<28}{'canary gone':>12}{'restored':>10}"
          f"{'reaction':>10}  (ms)")
    reactions = []
    for i, row in enumerate(rows, 1):
        if row.moments is None:
            print(f"{i:<4}{row.name:<26}{row.outcome:<26}{row.verdicts:<28}{'-':>12}{'-':>10}{'-':>10}")
            continue
        moments = row.moments
        reaction = moments.done - moments.failed
        reactions.append(reaction)
        gone, restored = moments.canary_gone - moments.failed, moments.restored - moments.failed
        print(f"{i:<4}{row.name:<26}{row.outcome:<26}{row.verdicts:<28}{gone * 1000:>12.1f}{restored * 1000:>10.1f}"
              f"{reaction * 1000:>10.1f}")
    if reactions:
        worst = max(reactions)
        print(f"\nreaction over {len(reactions)} rollbacks: p50 {percentile(reactions, 50) * 1000:.1f} ms, "
              f"max {worst * 1000:.1f} ms")
        print(f"  target < {TARGET_REACTION_S * 1000:g} ms (every rollback, judged on the max): "
              f"{worst * 1000:.1f} ms  {verdict_mark(worst < TARGET_REACTION_S)}")
    missing = len(rows) - len(reactions)
    if missing:
        print(f"  WARNING: {missing} of {len(rows)} bad releases did not end RolledBack")
    return not missing


def report_false_rollbacks(results: dict[str, list[dict[str, Any]]], wall: float,
                           users: dict[str, str] | None = None) -> int:
    """Print the good releases' outcomes per Deployment (with what their ``users`` saw, when counted), the
    target's PASS/MISS and every rollback's analyses; returns how many ended neither Promoted nor RolledBack."""
    print(f"{'deployment':<12}{'releases':>9}{'Promoted':>10}{'RolledBack':>12}{'other':>7}"
          + (f"{'users failed':>14}" if users else "") + "  verdicts")
    outcomes: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    rolled_back = []
    for name, items in results.items():
        mine = Counter(r["status"]["phase"] for r in items)
        theirs = Counter(a["verdict"] for r in items for a in r["status"].get("analyses") or [])
        outcomes += mine
        verdicts += theirs
        rolled_back += [r for r in items if r["status"]["phase"] == "RolledBack"]
        other = sum(mine.values()) - mine["Promoted"] - mine["RolledBack"]
        print(f"{name:<12}{len(items):>9}{mine['Promoted']:>10}{mine['RolledBack']:>12}{other:>7}"
              + (f"{users[name]:>14}" if users else "") + f"  {dict(theirs)}")
    releases = sum(outcomes.values())
    other = releases - outcomes["Promoted"] - outcomes["RolledBack"]
    print(f"{'total':<12}{releases:>9}{outcomes['Promoted']:>10}{outcomes['RolledBack']:>12}{other:>7}"
          + (f"{'':>14}" if users else "") + f"  {dict(verdicts)}")
    print(f"\noutcomes {dict(outcomes)}; wall time {wall:.0f} s ({wall / max(1, releases) * len(results):.1f} s "
          "per release per Deployment)")
    print(f"  target 0 rolled back: {len(rolled_back)}  {verdict_mark(not rolled_back)}")
    inconclusive = Counter(re.sub(r"\d+(\.\d+)?", "N", a.get("message") or "") for items in results.values()
                           for r in items for a in r["status"].get("analyses") or [] if a["verdict"] == "Inconclusive")
    for message, count in inconclusive.most_common():
        print(f"  Inconclusive (judged again) {count}x: {message}")
    for release in rolled_back:
        status = release["status"]
        print(f"  {release['metadata']['name']} ({release['spec']['deployment']}): {status.get('reason')}: "
              f"{status.get('message')}")
        for a in status.get("analyses") or []:
            print(f"    step {a['step']} ({a['weight']}%) {a['verdict']}: {a.get('message')} "
                  f"canary {a.get('canary')} baseline {a.get('baseline')}")
    if other:
        print(f"  WARNING: {other} release(s) ended neither Promoted nor RolledBack")
    return other
