"""One run per pipeline root: the lock outlives a killed holder while the processes it
started live, and every way of running the pipeline respects it; a service the run
starts and stops (the local Flink cluster) never holds it."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline import flink
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


# A runner that holds the lock and starts a stand-in for a Flink process (it listens on a
# port) as the local Flink cluster starts its processes, then waits to be killed.
START_A_CLUSTER_PROCESS = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from pipeline import flink, run_lock
    from pipeline.config import PipelineConfig

    log_dir, port = sys.argv[1:]
    run_lock.hold(PipelineConfig.from_env(), holder="make pipeline")
    listen = ("import socket, time; "
              f"server = socket.create_server(('localhost', {port})); time.sleep(600)")
    service = flink._start("job-server", [sys.executable, "-c", listen], cwd=log_dir,
                           env=os.environ, log_dir=Path(log_dir))
    print(service.pid, flush=True)
    time.sleep(600)
""")


def test_a_flink_cluster_left_by_a_killed_run_holds_no_lock_and_is_named(tmp_path):
    environment = {**os.environ, "OUTPUT_DIR": str(tmp_path / "outputs"),
                   "DATA_ROOT": str(tmp_path), "PIPELINE_NAME": "flink-lock-test"}
    with socket.socket() as probe:  # a free port, for the stand-in to listen on
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    runner = subprocess.Popen(
        [sys.executable, "-c", START_A_CLUSTER_PROCESS, str(tmp_path), str(port)],
        cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, text=True)
    service = int(runner.stdout.readline())
    try:
        deadline = time.monotonic() + 60
        while not flink.port_in_use(port):  # started, and done importing
            assert time.monotonic() < deadline
            time.sleep(0.1)
        descriptors = {fd: os.readlink(f"/proc/{service}/fd/{fd}")
                       for fd in os.listdir(f"/proc/{service}/fd")}
        # Its log, and /dev/null for standard input where the runner has the lock file.
        assert {fd: target for fd, target in descriptors.items()
                if not target.startswith("socket:")} == {
            "0": "/dev/null", "1": str(tmp_path / "job-server.log"),
            "2": str(tmp_path / "job-server.log")}
        runner.kill()  # SIGKILL: the runner cannot stop its cluster
        runner.wait()
        next_run = subprocess.run(
            [sys.executable, "-m", "pipeline.run_lock", "make pipeline", "true"], cwd=REPO_ROOT,
            env=environment, capture_output=True, text=True, timeout=300)
        assert next_run.returncode == 0, next_run.stderr
        with pytest.raises(RuntimeError, match=(
                rf"Port {port} on localhost is taken, by process {service} \(.*\), of a local "
                rf"Flink cluster left by run process {runner.pid}, which has ended .*"
                rf"`kill {service}`")):
            flink.check_ports_free([port])
    finally:
        runner.kill()
        os.kill(service, signal.SIGKILL)


def running(pid: int) -> bool:
    """Whether the process runs (a zombie, ended but not yet reaped, holds no file)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
