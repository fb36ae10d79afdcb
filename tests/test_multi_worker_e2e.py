"""MultiWorkerMirroredStrategy for real: two worker processes on loopback ports, each with
its own TF_CONFIG, run the command a TFJob's workers run (TFX's Trainer executor, and so
run_fn) on the transformed examples of the shared blessed run.

Not compared with a single-process run's weights: each worker draws its own
augmentation, and BatchNorm normalises over each replica's part of the global batch, so
a single process with the same global batch trains another model. What must hold: both
workers take the same steps in lockstep and end with identical weights, only the chief
writes outputs, and a worker killed mid-training and restarted resumes the cluster.
"""
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from benchmarks.multi_worker import free_ports
from components.tfjob_trainer.executor import worker_command
from metadata.store import (INPUT_EVENTS, PIPELINE_RUN_CONTEXT, artifacts_by_key, component_of,
                            open_store)
from models import features
from pipeline.definition import RUN_FN, TRAINER_ID

pytestmark = pytest.mark.e2e

WORKERS = 2
EPOCHS = 8
STEPS = EPOCHS * (200 // 32)  # the 200 images ingested, in global batches of 2 x 16


def trainer_inputs(config, run_id: str) -> dict:
    """The Trainer's input artifacts in a pipeline run, as TFX artifacts."""
    store = open_store(config.metadata_path)
    run = store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, run_id)
    [execution] = [execution for execution in store.get_executions_by_context(run.id)
                   if component_of(store, execution, config.pipeline_name) == TRAINER_ID]
    inputs = artifacts_by_key(store, execution, INPUT_EVENTS)
    types = {artifact_type.id: artifact_type for artifact_type in
             store.get_artifact_types_by_id([a.type_id for a in inputs.values()])}
    return {key: [artifact_utils.deserialize_artifact(types[artifact.type_id], artifact)]
            for key, artifact in inputs.items()}


@pytest.fixture(scope="module")
def worker_setup(blessed_run):
    """A function that starts the cluster's workers on given outputs, and the settings."""
    config = blessed_run["config"]
    inputs = trainer_inputs(config, blessed_run["summary"].run_id)
    model_config = dataclasses.replace(
        config.model_config(), distribution_strategy="multi_worker_mirrored", train_epochs=EPOCHS)

    def start_workers(outputs_dir: Path, ports: list[int] | None = None
                      ) -> tuple[list[subprocess.Popen], list[int]]:
        model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
        model.uri, model_run.uri = str(outputs_dir / "model"), str(outputs_dir / "model_run")
        command = worker_command(
            inputs, {"model": [model], "model_run": [model_run]},
            {"run_fn": RUN_FN, "train_args": "{}", "eval_args": "{}",
             "custom_config": json.dumps(model_config.to_custom_config())})
        ports = ports or free_ports(WORKERS)
        workers = []
        for index in range(WORKERS):
            tf_config = {"cluster": {"worker": [f"localhost:{port}" for port in ports]},
                         "task": {"type": "worker", "index": index}}
            log = open(outputs_dir / f"worker-{index}.log", "a")
            workers.append(subprocess.Popen(
                [sys.executable, *command[1:]], stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "TF_CONFIG": json.dumps(tf_config)}))
        return workers, ports

    return {"start_workers": start_workers, "examples": blessed_run["data_root"]}


def worker_log(outputs_dir: Path, index: int) -> str:
    return (outputs_dir / f"worker-{index}.log").read_text()


def wait_all(workers: list[subprocess.Popen], timeout_s: float = 900) -> list[int]:
    return [worker.wait(timeout=timeout_s) for worker in workers]


def test_two_workers_train_in_lockstep_resume_after_a_kill_and_only_the_chief_writes(
        worker_setup, tmp_path):
    start_workers = worker_setup["start_workers"]
    workers, ports = start_workers(tmp_path)
    deadline = time.monotonic() + 600
    while "Epoch 3:" not in worker_log(tmp_path, 0):  # the chief has backed up epoch 3
        assert time.monotonic() < deadline and workers[0].poll() is None, worker_log(
            tmp_path, 0)[-3000:]
        time.sleep(0.5)
    workers[1].send_signal(signal.SIGKILL)
    # The chief loses its peer: its collectives fail and it exits, as a TFJob's worker
    # would before the operator restarts them.
    assert workers[0].wait(timeout=300) != 0

    restarted, _ = start_workers(tmp_path, ports=ports)
    assert wait_all(restarted) == [0, 0], worker_log(tmp_path, 0)[-3000:]
    logs = [worker_log(tmp_path, index) for index in range(WORKERS)]
    assert "Resuming an interrupted training from its last checkpoint" in logs[0]
    for log in logs:
        assert "Training on 2 replica(s), global batch 32" in log
    # The same steps, the same weights: gradients were all-reduced over both workers.
    [(steps, _)] = {re.findall(r"Trained (\d+) steps; weights digest (\w+)", log)[-1]
                    for log in logs}
    assert int(steps) == STEPS

    # Only the chief's outputs: no other worker's temporary folders left behind.
    assert sorted(path.name for path in (tmp_path / "model").iterdir()) == [
        "Format-Serving", "training_state"]
    leftovers = [path for path in tmp_path.rglob("*")
                 if "workertemp" in path.name or "trainer-worker" in path.name]
    assert leftovers == []
    assert list((tmp_path / "model_run").rglob("events.out.tfevents.*"))

    model = tf.saved_model.load(str(tmp_path / "model" / "Format-Serving"))
    jpeg = next((worker_setup["examples"] / "test_set" / "cats").glob("*.jpg")).read_bytes()
    outputs = model.signatures[features.IMAGE_BYTES_SIGNATURE](
        **{features.IMAGE_BYTES_INPUT: tf.constant([jpeg])})
    assert outputs[features.PREDICTED_LABEL_KEY].numpy()[0].decode() in ("cats", "dogs")
