"""Test helpers: images made in memory, and the project's Transform run on them."""
import io
import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from metadata.store import component_states, open_store


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

    return {**PipelineConfig().model_config().to_custom_config(), "image_size_px": TEST_IMAGE_SIZE_PX,
            "width_multiplier": 0.125, "batch_size_per_replica": 4, "train_epochs": 2,
            "learning_rate": 1e-2, "warmup_steps": 1}


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
                  if path.name.isdigit())
