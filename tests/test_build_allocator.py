"""`effortlens build` runs itself again once with jemalloc's decay off (Polars reads the setting
as it loads, before the command line is parsed): real processes, the real command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from effortlens import processes

ROOT = Path(__file__).resolve().parents[1]

# started by every interpreter of the test's command: the environment it started with
RECORDER = """
import os
out = os.environ.get("EFFORTLENS_TEST_STARTS")
if out:
    with open(out, "a") as f:
        f.write(repr((os.environ.get("{mark}"), os.environ.get("_RJEM_MALLOC_CONF"))) + "\\n")
"""


def _starts(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list]:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(RECORDER.format(mark=processes.BUILD_MARK))
    log = tmp_path / "starts.txt"
    log.unlink(missing_ok=True)
    paths = [str(hook), str(ROOT / "lib"), str(ROOT / "widgets"), str(ROOT / "serve")]
    variables = {k: v for k, v in os.environ.items() if k != processes.BUILD_MARK}
    variables.update(
        PYTHONPATH=os.pathsep.join(paths),
        EFFORTLENS_TEST_STARTS=str(log),
        EFFORTLENS_CACHE=str(tmp_path / "cache"),
        **env,
    )
    variables.pop("_RJEM_MALLOC_CONF", None)
    done = subprocess.run(
        [sys.executable, "-m", "effortlens.cli", *args],
        env=variables,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    starts = [eval(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, starts


def test_effortlens_build_runs_once_more_with_the_decay_off_and_builds(tmp_path, tiny_planted):
    done, starts = _starts(tmp_path, "build", str(tiny_planted), "--no-warm")
    assert done.returncode == 0, done.stderr
    assert "built" in done.stdout + done.stderr
    # the command as started, then once again (not more) with the mark and the setting last
    assert len(starts) == 2, starts
    assert starts[0] == (None, None)
    mark, conf = starts[1]
    assert mark == "1"
    assert conf.endswith(processes.ALLOCATOR_CONF)


def test_a_build_that_fails_keeps_its_message_and_exit_status_through_the_second_start(tmp_path):
    done, starts = _starts(tmp_path, "build", str(tmp_path / "no such folder"), "--no-warm")
    assert done.returncode == 2
    assert "no such folder" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(starts) == 2


def test_other_commands_and_a_marked_build_start_once(tmp_path, tiny_planted):
    done, starts = _starts(tmp_path, "detect", str(tiny_planted))
    assert done.returncode == 0, done.stderr
    assert len(starts) == 1
    done, starts = _starts(
        tmp_path, "build", str(tiny_planted), "--no-warm", **{processes.BUILD_MARK: "1"}
    )
    assert done.returncode == 0, done.stderr
    assert starts == [("1", None)]
