"""The whole pipeline through `make pipeline` (TFX CLI, local engine) on tiny generated data.

One run trains, evaluates and pushes; a second run, with an unreachable accuracy
threshold, reuses the cached upstream components and pushes nothing.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from data.generate import generate_dataset
from models import features
from pipeline import summary
from pipeline.config import PipelineConfig

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[1]
CORRUPT_FILE = "cats/cat.999.jpg"
# Components whose inputs do not change between the two runs.
UPSTREAM_COMPONENTS = ["ImageExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer"]


def make_pipeline(environment: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(["make", "-C", str(REPO_ROOT), "pipeline"], capture_output=True,
                            text=True, env={**os.environ, **environment}, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    data_root = work / "data"
    generate_dataset(data_root, train_per_class=24, test_per_class=20, seed=3)
    (data_root / "training_set" / CORRUPT_FILE).write_bytes(os.urandom(2000))
    environment = {
        "DATA_ROOT": str(data_root),
        "OUTPUT_DIR": str(work / "outputs"),
        "LOCAL_HOME": str(work / "tfx_cli_home"),
        "PIPELINE_NAME": "e2e-test",
        "IMAGE_SIZE_PX": "32",
        "BATCH_SIZE_PER_REPLICA": "16",
        "TRAIN_STEPS": "30",
        "STEPS_PER_EPOCH": "15",
        "WARMUP_STEPS": "5",
        "MIN_ACCURACY": "0.0",
        "BEAM_NUM_WORKERS": "2",
    }
    first = make_pipeline(environment)
    config = PipelineConfig.from_env(environment)
    return {"environment": environment, "config": config, "data_root": data_root,
            "stdout": first.stdout, "summary": summary.latest_run_summary(config)}


def test_every_input_file_is_written_or_reported_rejected(tiny_run):
    config = tiny_run["config"]
    [examples_dir] = Path(config.pipeline_root, "ImageExampleGen", "examples").iterdir()
    report = json.loads((examples_dir / "ingestion_report.json").read_text())
    for split, folder in [("train", "training_set"), ("eval", "test_set")]:
        files_on_disk = len(list((tiny_run["data_root"] / folder).glob("*/*")))
        records = sum(1 for _ in tf.data.TFRecordDataset(
            [str(path) for path in (examples_dir / f"Split-{split}").iterdir()],
            compression_type="GZIP"))
        rejected = report["splits"][split]["rejected_files"]
        assert records == files_on_disk - len(rejected)
    assert [entry["file"] for entry in report["splits"]["train"]["rejected_files"]] == [
        CORRUPT_FILE]


def test_a_blessed_model_is_pushed_and_classifies_a_jpeg_from_disk(tiny_run):
    run = tiny_run["summary"]
    assert run.blessed
    assert run.pushed_model_dir and Path(run.pushed_model_dir).parent == Path(
        tiny_run["config"].serving_model_dir)
    assert f"Pushed to {run.pushed_model_dir}" in tiny_run["stdout"]

    model = tf.saved_model.load(run.pushed_model_dir)
    jpeg = (tiny_run["data_root"] / "test_set" / "dogs" / "dog.25.jpg").read_bytes()
    outputs = model.signatures[features.IMAGE_BYTES_SIGNATURE](
        **{features.IMAGE_BYTES_INPUT: tf.constant([jpeg])})
    assert outputs[features.PREDICTED_LABEL_KEY].numpy()[0].decode() in ("cats", "dogs")
    assert float(tf.reduce_sum(outputs[features.PROBABILITIES_KEY])) == pytest.approx(1.0)


def test_tfma_metrics_cover_the_eval_split(tiny_run):
    metrics = tiny_run["summary"].metrics
    assert metrics["example_count"] == 40  # test_set: 20 cats + 20 dogs
    assert 0.0 <= metrics["binary_accuracy"] <= 1.0


def test_rerun_with_unreachable_threshold_is_cached_and_pushes_nothing(tiny_run):
    first = tiny_run["summary"]
    # The same model is evaluated again; an accuracy of 1.0 would make the bound reachable.
    assert first.metrics["binary_accuracy"] < 1.0
    serving_dir = Path(tiny_run["config"].serving_model_dir)
    versions_before = sorted(path.name for path in serving_dir.iterdir())

    environment = {**tiny_run["environment"], "MIN_ACCURACY": "1.0"}
    result = make_pipeline(environment)
    config = PipelineConfig.from_env(environment)
    second = summary.latest_run_summary(config)

    assert second.run_id != first.run_id
    assert not second.blessed
    assert second.pushed_model_dir is None
    assert "Nothing pushed" in result.stdout
    assert any("binary_accuracy" in failure for failure in second.failed_thresholds)
    assert sorted(path.name for path in serving_dir.iterdir()) == versions_before
    assert execution_states(config, second.run_id) == {
        name: "CACHED" for name in UPSTREAM_COMPONENTS}


def execution_states(config: PipelineConfig, run_id: str) -> dict[str, str]:
    """The MLMD execution state of each upstream component in one pipeline run."""
    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    states = {}
    for execution in store.get_executions_by_context(run.id):
        [node] = [context for context in store.get_contexts_by_execution(execution.id)
                  if context.type == "node"]
        name = node.name.removeprefix(f"{config.pipeline_name}.")
        if name in UPSTREAM_COMPONENTS:
            states[name] = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
    return states
