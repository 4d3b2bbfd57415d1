"""The kind demo's users: a steady stream of requests to the recommendations Service.

Every request opens a new connection so that kube-proxy spreads them over all ready pods, stable and
canary alike, the way many independent users would; one kept-alive connection would stick to one pod.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[int] = Counter()

    def add(self, status: int) -> None:
        with self._lock:
            self._counts[status] += 1

    def take(self) -> dict[int, int]:
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return dict(sorted(counts.items()))


def hit(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0  # not answered at all (a pod going away, a Service without endpoints yet)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 ignores it otherwise
    url = os.environ.get("TARGET", "http://recommendations.shop.svc/")
    rps = float(os.environ.get("RPS", "20"))
    tally = Tally()
    print(f"sending {rps:g} requests/s to {url}", flush=True)
    next_at = last_report = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        while True:
            pool.submit(hit, url).add_done_callback(lambda done: tally.add(done.result()))
            # A fixed schedule rather than sleep-after-request, so slow answers do not lower the rate.
            next_at += 1 / rps
            time.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                print(f"last 10s by status (0 = no answer): {tally.take()}", flush=True)


if __name__ == "__main__":
    main()
