"""One run per pipeline root: the lock outlives a killed holder while the processes it
started live, and every way of running the pipeline respects it."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO_ROOT

# What a runner does: starts a long child (the TFX CLI starts the runner, the runner
# Beam's workers), which inherits its standard input.
START_A_CHILD = ("import subprocess; child = subprocess.Popen(['sleep', '600']); "
                 "print(child.pid, flush=True); child.wait()")


def test_the_lock_holds_while_any_process_of_the_run_lives(tmp_path):
    environment = {**os.environ, "OUTPUT_DIR": str(tmp_path / "outputs"),
                   "DATA_ROOT": str(tmp_path), "PIPELINE_NAME": "lock-test"}

    def run_lock(holder: str, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline.run_lock", holder, *command],
                              cwd=REPO_ROOT, env=environment, capture_output=True, text=True,
                              timeout=300)

    first = subprocess.Popen(
        [sys.executable, "-m", "pipeline.run_lock", "make pipeline", sys.executable, "-c",
         START_A_CHILD], cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, text=True)
    child = int(first.stdout.readline())
    first.kill()  # as a cron timeout kills `make`: its children live on
    first.wait()
    try:
        second = run_lock("make retrain", "true")
        assert second.returncode == 75
        assert (f"Another run of pipeline lock-test is under way: process {first.pid} (make "
                "pipeline, since ") in second.stderr
        assert "it has ended, the processes it started still run" in second.stderr
        # By hand, the runner itself refuses, before any work.
        by_hand = subprocess.run([sys.executable, "pipeline/local_runner.py"], cwd=REPO_ROOT,
                                 env=environment, capture_output=True, text=True, timeout=300)
        assert by_hand.returncode == 75
        assert f"process {first.pid} (make pipeline" in by_hand.stderr
    finally:
        os.kill(child, signal.SIGKILL)
    while running(child):
        time.sleep(0.1)
    assert run_lock("make retrain", "true").returncode == 0


def running(pid: int) -> bool:
    """Whether the process runs (a zombie, ended but not yet reaped, holds no file)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
