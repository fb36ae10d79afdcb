"""Test helpers: images made in memory, the project's Transform run on them, and
pipeline runs recorded in MLMD by hand."""
import io
import os
import subprocess
import time
from pathlib import Path

import numpy as np
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from PIL import Image

from metadata.store import (PIPELINE_RUN_CONTEXT, artifacts_by_key, component_of,
                            component_states, open_store)


def encode_image(width: int, height: int, seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A random-noise RGB image of the given size, encoded in memory."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


# Transform outputs of the unit tests: small images keep them fast.
TEST_IMAGE_SIZE_PX = 16


def small_model_config() -> dict:
    """The Trainer's custom_config for unit tests: the defaults, shrunk."""
    from pipeline.config import PipelineConfig

    return PipelineConfig(image_size_px=TEST_IMAGE_SIZE_PX, width_multiplier=0.125,
                          batch_size_per_replica=4, train_epochs=2, learning_rate=1e-2,
                          warmup_steps=1).model_config().to_custom_config()


def analyze_and_transform(raw_examples, temp_dir):
    """Runs the project's preprocessing_fn through TFT on Beam, in memory.

    Returns the transformed examples, the transform function and the raw metadata.
    """
    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from models import features
    from models.preprocessing import preprocessing_fn

    # Shaped as SchemaGen infers them from ExampleGen's output: one value per example.
    raw_feature_spec = {
        features.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
        features.LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
    }
    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(raw_feature_spec))
    with tft_beam.Context(temp_dir=str(temp_dir)):
        (transformed, _), transform_fn = (
            (raw_examples, metadata)
            | tft_beam.AnalyzeAndTransformDataset(
                lambda inputs: preprocessing_fn(inputs, {"image_size_px": TEST_IMAGE_SIZE_PX})))
    return transformed, transform_fn, metadata


def execution_states(config, run_id: str) -> dict[str, str]:
    """The MLMD execution state of each component in one pipeline run."""
    return component_states(open_store(config.metadata_path), run_id, config.pipeline_name)


def component_outputs(config, run_id: str, component: str) -> dict:
    """The output artifacts, by key, of one component in one pipeline run."""
    store = open_store(config.metadata_path)
    run = store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, run_id)
    [execution] = [execution for execution in store.get_executions_by_context(run.id)
                   if component_of(store, execution, config.pipeline_name) == component]
    return artifacts_by_key(store, execution)


class RecordedRun:
    """One pipeline run, recorded in MLMD as TFX records it: a context per run and per
    component, and each component's execution linked to its artifacts by keyed events."""

    def __init__(self, metadata_path: str, pipeline_name: str, run_id: str):
        connection = metadata_store_pb2.ConnectionConfig()
        connection.sqlite.filename_uri = metadata_path
        self.store = metadata_store.MetadataStore(connection)
        self.pipeline_name = pipeline_name
        self.run = self._context("pipeline_run", run_id)

    def artifact(self, type_name: str, uri: str, **custom_properties):
        artifact = metadata_store_pb2.Artifact(
            type_id=self.store.put_artifact_type(metadata_store_pb2.ArtifactType(name=type_name)),
            uri=uri, state=metadata_store_pb2.Artifact.LIVE)
        for name, value in custom_properties.items():
            field = "int_value" if isinstance(value, int) else "string_value"
            setattr(artifact.custom_properties[name], field, value)
        [artifact.id] = self.store.put_artifacts([artifact])
        return artifact

    def execution(self, component: str, inputs=None, outputs=None,
                  state=metadata_store_pb2.Execution.COMPLETE):
        execution = metadata_store_pb2.Execution(
            type_id=self.store.put_execution_type(
                metadata_store_pb2.ExecutionType(name=component)), last_known_state=state)
        events = []
        for event_type, artifacts in [(metadata_store_pb2.Event.INPUT, inputs or {}),
                                      (metadata_store_pb2.Event.OUTPUT, outputs or {})]:
            for key, artifact in artifacts.items():
                event = metadata_store_pb2.Event(type=event_type)
                event.path.steps.add().key = key
                events.append((artifact, event))
        self.store.put_execution(
            execution, events,
            [self.run, self._context("node", f"{self.pipeline_name}.{component}")])

    def _context(self, type_name: str, name: str):
        """The context of that name, made the first time (a component's, once per store)."""
        if existing := self.store.get_context_by_type_and_name(type_name, name):
            return existing
        context = metadata_store_pb2.Context(
            type_id=self.store.put_context_type(metadata_store_pb2.ContextType(name=type_name)),
            name=name)
        [context.id] = self.store.put_contexts([context])
        return context


REPO_ROOT = Path(__file__).resolve().parents[1]


def run_make(target: str, environment: dict[str, str]) -> subprocess.CompletedProcess:
    """`make <target>` in the repository, as a user runs it; fails the test if make fails."""
    result = subprocess.run(["make", "-C", str(REPO_ROOT), target], capture_output=True,
                            text=True, env={**os.environ, **environment}, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def serving_versions(config) -> list[str]:
    """The model versions in the serving directory, sorted: the numbered folders a model
    server loads (not the Pusher's lock file or staging folders)."""
    return sorted(path.name for path in Path(config.serving_model_dir).iterdir()
                  if path.name.isascii() and path.name.isdigit())


# The pytest-xdist group of the tests that read the blessed run (tests/conftest.py).
BLESSED_RUN_GROUP = "blessed_run"

# A file of random bytes among the blessed run's training images: it must be reported.
CORRUPT_FILE = "cats/cat.999.jpg"


def run_blessed_pipeline(work: Path) -> dict:
    """`make pipeline` on generated data with the default thresholds, a second `make
    pipeline` started beside it, and a stale training backup left from an interrupted
    run with other inputs. Fails unless the run blessed and pushed.

    Returns its environment, config, data root, stdout, the second run's result, the stale
    backup's path, the work folder and the run's summary.
    """
    from data.generate import generate_dataset
    from metadata.runs import latest_run_summary
    from pipeline import run_lock
    from pipeline.config import PipelineConfig

    data_root = work / "data"
    generate_dataset(data_root, train_per_class=100, test_per_class=50, seed=11)
    (data_root / "training_set" / CORRUPT_FILE).write_bytes(os.urandom(2000))
    environment = {
        "DATA_ROOT": str(data_root),
        "OUTPUT_DIR": str(work / "outputs"),
        "LOCAL_HOME": str(work / "tfx_cli_home"),
        "PIPELINE_NAME": "e2e-test",
        # Enough pixels, images and steps for a model clearly better than chance (about
        # 0.85), judged by the default thresholds.
        "IMAGE_SIZE_PX": "64",
        "BATCH_SIZE_PER_REPLICA": "16",
        "TRAIN_EPOCHS": "16",  # 12 steps each
        "WARMUP_STEPS": "10",
        "BEAM_NUM_WORKERS": "2",
    }
    config = PipelineConfig.from_env(environment)
    stale_backup = Path(config.pipeline_root, "Trainer", ".training_backup", "0123456789abcdef")
    (stale_backup / "chief").mkdir(parents=True)
    make_pipeline = ["make", "-C", str(REPO_ROOT), "pipeline"]
    first = subprocess.Popen(make_pipeline, env={**os.environ, **environment},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = run_lock.lock_path(config)
    while not (lock.exists() and lock.read_text()):  # until the first run holds it
        assert first.poll() is None, first.communicate()
        time.sleep(0.5)
    beside = subprocess.run(make_pipeline, env={**os.environ, **environment},
                            capture_output=True, text=True, timeout=300)
    stdout, stderr = first.communicate(timeout=1500)
    assert first.returncode == 0, stdout[-3000:] + stderr[-5000:]
    summary = latest_run_summary(config.metadata_path)
    assert summary.blessed and summary.pushed_model_dir, summary
    return {"environment": environment, "config": config, "data_root": data_root,
            "stdout": stdout, "run_beside": beside, "stale_backup": stale_backup,
            "work": work, "summary": summary}


def full_log(console_output: str) -> str:
    """The log file a command run under pipeline/console.py named in its first line (after
    make's own "Entering directory" line, when make runs make)."""
    path = next((line.removeprefix("Full log: ") for line in console_output.splitlines()
                 if line.startswith("Full log: ")), None)
    assert path, console_output[:500]
    return Path(path).read_text(errors="replace")
