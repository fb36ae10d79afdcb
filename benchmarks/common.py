"""What the benchmarks share: the machine they ran on, timing, and the Trainer's input."""
import os
import platform
import time
from typing import Callable

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils, standard_artifacts

from models import trainer
from pipeline import summary
from pipeline.config import PipelineConfig


def machine() -> str:
    gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]
    return (f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
            f"GPUs: {', '.join(gpus) or 'none'}; TensorFlow {tf.__version__}")


def images_per_second(run: Callable[[], None], images: int, repeats: int = 3) -> float:
    """The best of `repeats` timed runs of `run`, which processes `images` images."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return images / best


def latest_transform_outputs(config: PipelineConfig) -> tuple[str, str]:
    """(transformed examples URI, transform graph URI) of the pipeline's newest Transform."""
    store = summary.metadata_store_of(config)
    newest = {}
    for type_name in ("Examples", "TransformGraph"):
        artifacts = [artifact for artifact in store.get_artifacts_by_type(type_name)
                     if "/Transform/" in artifact.uri]
        if not artifacts:
            raise LookupError(f"No Transform output in {config.metadata_path}: "
                              "run `make pipeline` first.")
        newest[type_name] = max(artifacts, key=lambda a: a.create_time_since_epoch).uri
    return newest["Examples"], newest["TransformGraph"]


def trainer_input(examples_uri: str, transform_graph_uri: str, global_batch_size: int,
                  split: str = "train") -> tf.data.Dataset:
    """The Trainer's own training input (trainer.input_dataset) over transformed examples,
    built with the data accessor TFX's Trainer would give run_fn."""
    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    accessor = tfx.components.DataAccessor(
        tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
        record_batch_factory=None, data_view_decode_fn=None)
    files = [os.path.join(artifact_utils.get_split_uri([examples], split), "*")]
    return trainer.input_dataset(files, accessor, tft.TFTransformOutput(transform_graph_uri),
                                 global_batch_size, training=True)
