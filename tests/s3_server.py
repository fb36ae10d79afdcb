"""A real S3 server for tests: SeaweedFS, which serves KFP's default object store from
KFP 2.15, run as KFP's manifests run it (`weed server -s3`) on free loopback ports.

The `s3_server` fixture (one server per test session, exposed by tests/conftest.py)
builds it the first time (`make seaweedfs`: Go, about 9 minutes and 700 MB of modules),
starts it with one identity, creates the bucket `mlpipeline`, and stops it and removes its
data at the end. Without Go (and no binary built), the tests that use it are skipped.
"""
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from kubeflow.object_store import (DEFAULT_ACCESS_KEY_KEY, DEFAULT_SECRET_KEY_KEY,
                                   DEFAULT_SECRET_NAME)

REPO = Path(__file__).resolve().parents[1]
WEED = REPO / "outputs" / "bin" / "weed"
BUCKET = "mlpipeline"
BUILD_TIMEOUT_S = 1800
START_TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class S3Server:
    """A running server: its S3 API at `endpoint` (host:port, as a kfp-launcher providers
    entry holds it), the one identity's keys, and its bucket."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self):
        """A boto3 S3 client of this server: what a test reads and writes the store with
        (not TensorFlow, whose S3 filesystem aborts the process as it exits)."""
        import boto3
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)

    def upload(self, folder: Path, prefix: str, rename=lambda name: name) -> None:
        """Every file under `folder` to `prefix/<its relative path>`, renamed by `rename`."""
        client = self.client()
        for path in sorted(path for path in folder.rglob("*") if path.is_file()):
            relative = path.relative_to(folder)
            client.upload_file(str(path), self.bucket,
                               f"{prefix}/{relative.with_name(rename(relative.name)).as_posix()}")

    def kfp_secrets(self) -> dict[str, dict[str, str]]:
        """The namespace's Secrets as KFP's default install holds the store's keys."""
        return {DEFAULT_SECRET_NAME: {DEFAULT_ACCESS_KEY_KEY: self.access_key,
                                      DEFAULT_SECRET_KEY_KEY: self.secret_key}}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    if not WEED.is_file():
        if shutil.which("go") is None:
            pytest.skip("no Go toolchain to build SeaweedFS (make seaweedfs), the tests' S3 server")
        built = subprocess.run(["make", "-C", str(REPO), "seaweedfs"], capture_output=True,
                               text=True, timeout=BUILD_TIMEOUT_S)
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    with running_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@contextlib.contextmanager
def running_s3_server(work_dir: Path) -> Iterator[S3Server]:
    """SeaweedFS (outputs/bin/weed) serving S3 while the block runs, its data in work_dir."""
    # Every server of `weed server` on a port of its own: http and gRPC of master, volume
    # server, filer and S3 gateway (gRPC would otherwise be http + 10000, maybe taken).
    ports = _free_ports(8)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    # localhost, not 127.0.0.1: a client addressing the bucket virtual-hosted
    # (mlpipeline.localhost) fails to resolve it, rather than passing unseen.
    server = S3Server(endpoint=f"localhost:{s3}", access_key=secrets.token_hex(8),
                      secret_key=secrets.token_hex(16), bucket=BUCKET)
    config = work_dir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tests", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}]}]}))
    data_dir = work_dir / "data"
    data_dir.mkdir()
    log_path = work_dir / "weed.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(WEED), "server", "-ip=127.0.0.1", f"-dir={data_dir}",
             f"-master.port={master}", f"-master.port.grpc={master_grpc}",
             # Volumes of up to 64 MB, files that grow as they are written, 7 more at a
             # time as they fill: 100 hold the few pipeline runs of a session.
             "-master.volumeSizeLimitMB=64", f"-volume.port={volume}",
             f"-volume.port.grpc={volume_grpc}", "-volume.max=100", "-filer",
             f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}", "-s3",
             f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}",
             # The S3 gateway's Iceberg and Lance catalogs: not needed, and fixed ports.
             "-s3.port.iceberg=0", "-s3.port.lance=0"],
            # Its log files go to the temporary folder (Go's os.TempDir): this one.
            env={**os.environ, "TMPDIR": str(work_dir)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_serving(process, f"http://127.0.0.1:{s3}/status", log_path)
        _create_bucket(server)
        yield server
    finally:
        # Killed: its orderly stop takes 15 s (the filer retries its metadata log once the
        # volume server has gone), and its data goes anyway. That leaves the Unix sockets
        # it names after its ports, in /tmp whatever TMPDIR says.
        process.kill()
        process.wait()
        for port in ports:
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def _free_ports(count: int) -> list[int]:
    """Ports free on the loopback interface now (held together, so distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_until_serving(process: subprocess.Popen, status_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited with status {process.returncode}:\n"
                               f"{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(status_url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"weed server's S3 API did not answer within {START_TIMEOUT_S} s:\n"
                       f"{log_path.read_text()[-3000:]}")


def _create_bucket(server: S3Server) -> None:
    server.client().create_bucket(Bucket=server.bucket)
