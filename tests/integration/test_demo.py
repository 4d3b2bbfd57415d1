"""`make demo`, the README's first command, played end to end on its own local control plane.

The demo checks its own story as it goes (a refusal that is admitted, a release that never finishes
and a missing freeze all raise); this test runs it and checks that every chapter reached the reader.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.harness.cluster import REPO_ROOT, LocalCluster


def test_make_demo_plays_every_chapter(local_cluster: LocalCluster, tmp_path: Path) -> None:
    # `local_cluster` is only asked for so this test skips (or fails under CI) like the others when no
    # control plane can be had; the demo starts its own in tmp_path.
    state = tmp_path / "demo"
    try:
        run = subprocess.run([sys.executable, "-m", "tests.harness.demo", "--state-dir", str(state)],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    finally:
        LocalCluster(state).stop()
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    chapters = [
        "is missing annotation ballast.dev/runbook",          # a refused Deployment...
        "deployment.apps/recommendations patched",            # ...and its fix
        "recommendations-canary",                             # a canary taking traffic
        "re-applies pod template",                            # the rolled-back revision refused
        "frozen by window incident-review",                   # a freeze refusal
        "bob let Deployment shop/checkout through freeze",    # break-glass, recorded
        "who cannot also approve it (four eyes)",             # an author cannot approve
        "approved.",                                          # somebody else does
        "Analysis failed at step 1",                          # the rollback explained
        "STABILITY SHARE",                                    # the scoreboard
    ]
    assert [chapter for chapter in chapters if chapter not in out] == []
    status = out[out.index("kubectl ballast status"):out.index("kubectl ballast describe")]
    assert "Promoted" in status and "RolledBack" in status and "yes (incident-review)" in status
    board = out[out.index("kubectl ballast scoreboard"):].splitlines()
    header = next(line for line in board if line.startswith("TEAM"))
    rows = {line.split()[0]: dict(zip(re.split(r"\s{2,}", header), re.split(r"\s{2,}", line), strict=True))
            for line in board if line.startswith(("payments", "discovery"))}
    assert rows["payments"]["BLOCKED BY FREEZE"] == "1" and rows["payments"]["BREAK GLASS"] == "1"
    assert rows["discovery"]["ROLLED BACK"] == "1" and rows["discovery"]["PROMOTED"] == "1"
