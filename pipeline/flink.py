"""Beam on Apache Flink, on this machine: Beam's Flink job server with an embedded Flink
cluster, and Python SDK workers in processes of their own that see the lock's packages
but not this checkout, so that our code reaches them as on a cluster: through the
package Beam stages from `--setup_file`.

    with local_flink_cluster(config.flink_dir):  # what `make pipeline BEAM_RUNNER=flink`
        ...                                      # runs around the run: Beam pipelines with
                                                 # PipelineConfig.beam_pipeline_args()

What runs, and where it comes from (fetched once into the config's flink_dir, under
output_dir, by `install()`, `make flink-runner`):

- The job server (`FlinkJobServerDriver --flink-master=[local]`), which runs each job on a
  Flink mini cluster of its own, from the classpath that flink/pom.xml resolves with
  Maven into flink_dir (the first time about 150 MB, two minutes; the jars stay in
  ~/.m2, so a fresh output_dir only copies them).
- A worker pool (Beam's `worker_pool_main`, what the SDK container's `--worker_pool` mode
  runs, e.g. as a Flink TaskManager's sidecar on Kubernetes), asked by Flink for SDK
  workers (EXTERNAL environment). It starts each through flink/sdk_worker.sh and Beam's
  boot program, the SDK container's entry point (built with Go from Beam's own module at
  our Beam version), which fetches the job's staged files, installs its package and
  starts the SDK harness.
- The workers' Python is a venv of its own (flink_dir/worker-venv) that reads the
  lock's packages from this environment's site-packages by a plain path line: Python
  does not process the .pth files of a folder added that way, so this checkout's editable
  install is not seen. The pool runs in a scratch folder, not the checkout, without
  PYTHONPATH: a worker imports our code from the package the job staged, or fails.

The ports are Beam's conventional ones (pipeline/config.py), fixed so that a run's Beam
args (which TFX keys its cache by) are the same every run: one such cluster per machine
at a time.

The cluster is a service that the run stops, not a part of the run that ends by itself:
its processes do not hold the run's lock (pipeline/run_lock.py), so that a runner killed
before it could stop them (SIGKILL, a cron timeout) leaves the lock to the next run,
which then finds the cluster's ports taken and names the processes that hold them.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

import psutil

from pipeline.config import (FLINK_ARTIFACT_PORT, FLINK_JOB_SERVER_PORT, FLINK_WORKER_POOL_PORT,
                             PipelineConfig)
from pipeline.source import REPO_ROOT

# Read without importing Beam, which the run's own process does not need.
BEAM_VERSION = importlib.metadata.version("apache-beam")

POM = REPO_ROOT / "flink" / "pom.xml"
SDK_WORKER_SCRIPT = REPO_ROOT / "flink" / "sdk_worker.sh"
# Beam's boot program for the Python SDK container, from Beam's Go module at the SDK's
# own version (the Go module proxy serves it; its dependencies are cached in ~/go).
BOOT_PACKAGE = f"github.com/apache/beam/sdks/v2/python/container@v{BEAM_VERSION}"
# In the environment of the cluster's processes: the process id of the run that started
# them, by which a later run tells a cluster left by a killed run from a running one's.
STARTED_BY_ENV = "LOCAL_FLINK_CLUSTER_STARTED_BY"
JOB_SERVER_MAIN = "org.apache.beam.runners.flink.FlinkJobServerDriver"
# The flags Flink's own launch scripts give a Java 17 JVM (env.java.opts.all of Flink
# 1.19's default configuration): Flink serializes JDK classes by reflection.
JAVA_OPENS = [f"--add-opens=java.base/{package}=ALL-UNNAMED" for package in (
    "java.lang", "java.net", "java.io", "java.nio", "sun.nio.ch", "java.lang.reflect",
    "java.text", "java.time", "java.util", "java.util.concurrent",
    "java.util.concurrent.atomic", "java.util.concurrent.locks")]
# The embedded Flink cluster, and so every job's data between steps, lives in this heap.
JOB_SERVER_HEAP = "-Xmx2g"
# Timestamped; not Flink's every task state change, nor the runner's dump of every job's
# metrics at its end (INFO, megabytes a run). The job service's own lines stay.
JOB_SERVER_LOGGING = [f"-Dorg.slf4j.simpleLogger.{setting}" for setting in (
    "showDateTime=true", "dateTimeFormat=HH:mm:ss.SSS", "log.org.apache.flink=warn",
    "log.org.apache.beam.runners.flink.FlinkPipelineRunner=warn")]
# A cold JVM, then Flink's and Beam's services; seconds on an idle machine.
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30
# Tools that install() needs, and what each is for.
REQUIRED_TOOLS = {"java": "the job server", "mvn": "fetching the job server",
                  "go": "building Beam's boot program"}


def missing_tools() -> list[str]:
    """The tools of REQUIRED_TOOLS this machine lacks."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


@dataclasses.dataclass(frozen=True)
class FlinkFolder:
    """Where the local cluster's programs and logs lie (PipelineConfig.flink_dir)."""

    root: Path

    @property
    def job_server_classpath(self) -> Path:
        """The folder of the job server's jars, named by the POM's digest: a changed POM
        resolves into a folder of its own."""
        digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
        return self.root / f"job-server-{digest}"

    @property
    def boot(self) -> Path:
        return self.root / f"beam-boot-{BEAM_VERSION}"

    @property
    def worker_venv(self) -> Path:
        return self.root / "worker-venv"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def install(flink_dir: str) -> None:
    """Fetches and builds what the cluster runs into flink_dir, unless already there: the
    job server's classpath, Beam's boot program and the workers' venv."""
    folder = FlinkFolder(Path(flink_dir))
    missing = missing_tools()
    if missing:
        raise RuntimeError("Beam on Flink needs " + ", ".join(
            f"{tool} ({REQUIRED_TOOLS[tool]})" for tool in missing) + " on the PATH.")
    folder.root.mkdir(parents=True, exist_ok=True)
    classpath = folder.job_server_classpath
    if not classpath.is_dir():
        print(f"Fetching Beam's Flink job server with Maven into {classpath} (the first "
              "time about 150 MB, kept in ~/.m2)...", flush=True)
        _build_into(classpath, lambda partial: [
            "mvn", "-B", "-q", "-Dstyle.color=never", "-f", str(POM), "package",
            f"-Dclasspath.dir={partial}"])
    if not folder.boot.is_file():
        print(f"Building Beam's SDK worker boot program ({BOOT_PACKAGE}) with Go...", flush=True)
        with tempfile.TemporaryDirectory(dir=folder.root) as gobin:
            subprocess.run(["go", "install", BOOT_PACKAGE], check=True,
                           env={**os.environ, "GOBIN": gobin})
            # `go install` names the program after its folder, python/container.
            Path(gobin, "container").replace(folder.boot)
    _make_worker_venv(folder.worker_venv)


def _build_into(target: Path, command) -> None:
    """Runs command(partial folder), then renames the folder into place: an interrupted
    fetch leaves no half-filled target."""
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        subprocess.run(command(partial), check=True)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _make_worker_venv(venv: Path) -> None:
    """A venv whose Python reads this environment's site-packages as a plain path: the
    lock's packages, without the .pth files there (this checkout's editable install)."""
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    packages = {sysconfig.get_paths()[name] for name in ("purelib", "platlib")}
    [worker_site_packages] = venv.glob("lib/python*/site-packages")
    (worker_site_packages / "pipeline-environment.pth").write_text(
        "".join(f"{path}\n" for path in sorted(packages)))


@contextlib.contextmanager
def local_flink_cluster(flink_dir: str) -> Iterator[None]:
    """The job server on localhost (FLINK_JOB_SERVER_PORT, FLINK_ARTIFACT_PORT) and the
    worker pool (FLINK_WORKER_POOL_PORT), both stopped on the way out, failures included.
    Their logs: FlinkFolder(flink_dir).logs."""
    install(flink_dir)
    folder = FlinkFolder(Path(flink_dir))
    check_ports_free((FLINK_JOB_SERVER_PORT, FLINK_ARTIFACT_PORT, FLINK_WORKER_POOL_PORT))
    folder.logs.mkdir(parents=True, exist_ok=True)
    # The cluster's files: the jobs' staged files, the workers' folders; its processes'
    # working directory, not the checkout.
    with tempfile.TemporaryDirectory(prefix="local-flink-") as scratch, \
            contextlib.ExitStack() as running:
        workers_dir = os.path.join(scratch, "workers")
        os.mkdir(workers_dir)
        job_server = _start(
            "job-server",
            ["java", JOB_SERVER_HEAP, *JOB_SERVER_LOGGING, *JAVA_OPENS,
             "-cp", f"{folder.job_server_classpath}/*", JOB_SERVER_MAIN,
             "--flink-master=[local]", f"--job-port={FLINK_JOB_SERVER_PORT}",
             f"--artifact-port={FLINK_ARTIFACT_PORT}", f"--artifacts-dir={scratch}/artifacts",
             "--expansion-port=0"],  # for cross-language transforms, which we have none of
            cwd=scratch, env=os.environ, log_dir=folder.logs)
        running.callback(_stop, job_server, signal.SIGTERM)
        pool = _start(
            "worker-pool",
            [str(folder.worker_venv / "bin" / "python"), "-m",
             "apache_beam.runners.worker.worker_pool_main",
             f"--service_port={FLINK_WORKER_POOL_PORT}",
             f"--container_executable={SDK_WORKER_SCRIPT}"],
            cwd=scratch, env=_worker_environment(folder, workers_dir), log_dir=folder.logs)
        # SIGINT: the pool's own shutdown, which stops the workers it started.
        running.callback(_stop, pool, signal.SIGINT)
        _wait_until_listening(job_server, "job server", FLINK_JOB_SERVER_PORT, folder.logs)
        _wait_until_listening(pool, "worker pool", FLINK_WORKER_POOL_PORT, folder.logs)
        yield


def _worker_environment(folder: FlinkFolder, workers_dir: str) -> dict[str, str]:
    """The pool's environment, and so every worker's: the worker venv's Python first on
    the PATH (the pool and boot start a bare `python`), nothing of this checkout's."""
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**environment,
            "PATH": f"{folder.worker_venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "VIRTUAL_ENV": str(folder.worker_venv),
            "BEAM_BOOT": str(folder.boot),
            "BEAM_WORKERS_DIR": workers_dir,
            "TF_USE_LEGACY_KERAS": "1"}


def _start(name: str, command: list[str], cwd: str, env, log_dir: Path) -> subprocess.Popen:
    """One of the cluster's processes, its output to its log. Its standard input is
    /dev/null, not the run's lock that this process's children inherit (see the module's
    docstring); Popen closes every other descriptor."""
    with open(log_dir / f"{name}.log", "w") as log:
        return subprocess.Popen(command, cwd=cwd, env={**env, STARTED_BY_ENV: str(os.getpid())},
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                close_fds=True)


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("localhost", port)) == 0


def check_ports_free(ports: Iterable[int]) -> None:
    """Raises RuntimeError naming each port taken on localhost, and the process that
    holds it: a cluster left by a killed run, a running run's, or another program."""
    taken = [port for port in ports if port_in_use(port)]
    if taken:
        raise RuntimeError("The local Flink cluster needs ports that are taken. " + " ".join(
            f"Port {port} on localhost is taken, {_holder_of(port)}." for port in taken))


def _holder_of(port: int) -> str:
    """"by process 123 (...)" and whose it is, as far as this user can see."""
    listeners = sorted(connection.pid for connection in psutil.net_connections("tcp")
                       if connection.status == psutil.CONN_LISTEN
                       and connection.laddr.port == port and connection.pid)
    if not listeners:
        return "by a process this user cannot see (another user's)"
    process = psutil.Process(listeners[0])
    try:
        name, command = process.name(), " ".join(process.cmdline())
        started_by = process.environ().get(STARTED_BY_ENV)
    except psutil.Error:  # it ended meanwhile, or it is another user's
        return f"by process {process.pid}"
    holder = f"by process {process.pid} ({name})"
    if started_by is None:
        return f"by process {process.pid} ({command[:200]}), not a local Flink cluster's"
    if psutil.pid_exists(int(started_by)):
        return (f"{holder}, of the local Flink cluster of run process {started_by}, which "
                "still runs: one BEAM_RUNNER=flink run per machine at a time")
    return (f"{holder}, of a local Flink cluster left by run process {started_by}, which has "
            f"ended without stopping it (killed?): stop it with `kill {process.pid}`")


def _wait_until_listening(process: subprocess.Popen, name: str, port: int,
                          log_dir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_in_use(port):
        if process.poll() is not None:
            raise RuntimeError(f"The {name} exited with status {process.returncode} before "
                               f"listening on port {port}:\n{_log_tail(log_dir)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"The {name} did not listen on port {port} within "
                               f"{START_TIMEOUT_S} s:\n{_log_tail(log_dir)}")
        time.sleep(0.5)


def _log_tail(log_dir: Path, lines: int = 30) -> str:
    return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-lines:])
                     for log in sorted(log_dir.glob("*.log")))


def _stop(process: subprocess.Popen, stop_signal: int) -> None:
    """Asks the process to stop, then kills it if it has not within STOP_TIMEOUT_S."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    # `make flink-runner`: fetch and build ahead of a first BEAM_RUNNER=flink run.
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    flink_dir = PipelineConfig.from_env().flink_dir
    install(flink_dir)
    flink_folder = FlinkFolder(Path(flink_dir))
    print(f"Job server classpath: {flink_folder.job_server_classpath}\n"
          f"Boot program: {flink_folder.boot}\nWorker venv: {flink_folder.worker_venv}")
