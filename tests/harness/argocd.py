"""Argo CD's Lua health checks, run the way Argo CD runs them: deploy/argocd/health.lua without an Argo CD.

Argo CD (util/lua/lua.go) runs a health script in gopher-lua, a Lua 5.1, with the live object decoded from
JSON into the global ``obj`` (nulls dropped, numbers as Lua numbers), and takes the table it returns. With
``useOpenLibs`` it opens Lua's standard libraries but swaps ``os`` for a safe one (``time`` and ``date``);
without, only base, table, package and that ``os``. A status outside Argo CD's six is reported ``Unknown``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lupa import lua51

HEALTH_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "health.lua"
STATUSES = frozenset({"Healthy", "Progressing", "Suspended", "Degraded", "Missing", "Unknown"})


def health(obj: dict[str, Any], open_libs: bool = True, script: str | None = None) -> dict[str, str]:
    """What Argo CD would report for ``obj``: ``{"status": ..., "message": ...}``."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=False)
    lua = runtime.globals()
    lua.os = runtime.table_from({"time": lua.os.time, "date": lua.os.date})
    for library in ("io", "debug") if open_libs else ("io", "debug", "string", "math", "coroutine"):
        lua[library] = None
    lua.obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(script if script is not None else HEALTH_SCRIPT.read_text())
    answer = {key: value for key, value in result.items()} if result is not None else {}
    if answer.get("status") not in STATUSES:
        return {"status": "Unknown", "message": "Lua returned an invalid health status"}
    return answer
