"""A rollback's API calls run on threads of their own, never queued behind every other pass's calls."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from ballast.api.release import ReleasePhase
from ballast.controllers import releases

CALLER = contextvars.ContextVar("caller", default="nobody")


def where() -> tuple[str, str]:
    return threading.current_thread().name, CALLER.get()


def test_a_rollback_takes_the_rollback_lane_while_the_default_threads_are_all_busy():
    async def scenario() -> tuple[tuple[str, str], bool]:
        lane = ThreadPoolExecutor(1, thread_name_prefix="ballast-rollback")
        runtime = SimpleNamespace(rollback_executor=lane)
        default = ThreadPoolExecutor(1, thread_name_prefix="default")
        asyncio.get_running_loop().set_default_executor(default)
        release_them = threading.Event()
        busy = asyncio.create_task(asyncio.to_thread(release_them.wait))  # every routine thread taken
        await asyncio.sleep(0.05)
        CALLER.set("a release pass")
        rolling_back = SimpleNamespace(status=SimpleNamespace(phase=ReleasePhase.ROLLING_BACK))
        answer = await asyncio.wait_for(releases._blocking(runtime, rolling_back, where), 5)
        progressing = SimpleNamespace(status=SimpleNamespace(phase=ReleasePhase.PROGRESSING))
        routine = asyncio.create_task(releases._blocking(runtime, progressing, where))
        await asyncio.sleep(0.05)
        queued = not routine.done()  # a routine call waits for the default threads
        release_them.set()
        await busy
        assert (await routine)[0].startswith("default")
        lane.shutdown()
        return answer, queued

    (thread, caller), queued = asyncio.run(scenario())
    assert thread.startswith("ballast-rollback") and caller == "a release pass" and queued
