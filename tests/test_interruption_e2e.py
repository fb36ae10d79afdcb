"""A pipeline killed during training, run again: finished components come from the cache,
the Trainer resumes from its last epoch, and nothing half-made is ever served."""
import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from data.generate import generate_dataset
from metadata.runs import latest_run_summary
from metadata.store import open_store, pipeline_runs
from pipeline import run_lock
from pipeline.config import PipelineConfig
from tests.helpers import REPO_ROOT, execution_states, serving_versions

pytestmark = pytest.mark.e2e

FINISHED_BEFORE_TRAINING = ["ImageExampleGen", "StatisticsGen", "SchemaGen", "Transform"]


def wait_until_unlocked(lock: Path, timeout_s: float = 60) -> None:
    """Until every killed process has exited: the kernel drops the run lock with the last
    one, which can be a moment after make itself."""
    deadline = time.monotonic() + timeout_s
    with open(lock) as file:
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(file, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{lock} still held {timeout_s} s after the kill"
                time.sleep(0.2)


def test_a_run_killed_while_training_resumes_from_its_last_epoch(tmp_path):
    generate_dataset(tmp_path / "data", train_per_class=24, test_per_class=10, seed=5)
    environment = {
        **os.environ,
        "DATA_ROOT": str(tmp_path / "data"),
        "OUTPUT_DIR": str(tmp_path / "outputs"),
        "LOCAL_HOME": str(tmp_path / "tfx_cli_home"),
        "PIPELINE_NAME": "interruption-test",
        "IMAGE_SIZE_PX": "32",
        "BATCH_SIZE_PER_REPLICA": "4",
        "TRAIN_EPOCHS": "4",  # 12 steps each
        "WARMUP_STEPS": "5",
        "MIN_ACCURACY": "0.0",
        "BEAM_NUM_WORKERS": "2",
        "VERBOSE": "1",  # the whole log on the console, where the kill watches for an epoch
    }
    config = PipelineConfig.from_env(environment)
    command = ["make", "-C", str(REPO_ROOT), "pipeline"]

    # Its own process group, so that the kill takes the whole tree: make, the TFX CLI,
    # the runner and its Beam workers, as a power cut or an OOM kill would.
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for line in process.stdout:
            if "Epoch 2: train accuracy" in line:
                os.killpg(process.pid, signal.SIGKILL)
                break
    finally:
        process.wait(timeout=1500)
    assert process.returncode == -signal.SIGKILL or process.returncode != 0
    serving = Path(config.serving_model_dir)
    assert not serving.exists() or not any(serving.iterdir())
    interrupted_run = pipeline_runs(open_store(config.metadata_path))[-1].name
    assert execution_states(config, interrupted_run)["Trainer"] == "RUNNING"
    wait_until_unlocked(run_lock.lock_path(config))

    rerun = subprocess.run(command, env=environment, capture_output=True, text=True,
                           timeout=1500)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-5000:]
    assert "Resuming an interrupted training from its last checkpoint" in rerun.stderr
    # Epochs 1 and 2 were saved; the rerun trains epochs 3 and 4 only.
    assert "Epoch 1: train accuracy" not in rerun.stderr
    assert "Epoch 4: train accuracy" in rerun.stderr

    run = latest_run_summary(config.metadata_path)
    states = execution_states(config, run.run_id)
    assert {name: states[name] for name in FINISHED_BEFORE_TRAINING} == {
        name: "CACHED" for name in FINISHED_BEFORE_TRAINING}
    assert states["Trainer"] == "COMPLETE"
    assert run.pushed_model_dir
    [version] = serving_versions(config)
    assert (serving / version / "saved_model.pb").exists()
