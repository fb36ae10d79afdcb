"""What the benchmarks share: the machine they ran on, timing, and the Trainer's input."""
import os
import platform
import time
from typing import Callable

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs

from metadata.store import newest_component_outputs, open_store
from models import input_pipeline
from pipeline.config import PipelineConfig
from pipeline.definition import TRANSFORM_ID


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
    outputs = newest_component_outputs(open_store(config.metadata_path), config.pipeline_name,
                                       TRANSFORM_ID)
    if not outputs:
        raise LookupError(f"No Transform output in {config.metadata_path}: "
                          "run `make pipeline` first.")
    return (outputs[standard_component_specs.TRANSFORMED_EXAMPLES_KEY].uri,
            outputs[standard_component_specs.TRANSFORM_GRAPH_KEY].uri)


def trainer_input(examples_uri: str, transform_graph_uri: str, global_batch_size: int,
                  split: str = "train") -> tf.data.Dataset:
    """The Trainer's own training input (input_pipeline.training_input) over transformed examples,
    built with the data accessor TFX's Trainer would give run_fn."""
    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    accessor = tfx.components.DataAccessor(
        tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
        record_batch_factory=None, data_view_decode_fn=None)
    files = [os.path.join(artifact_utils.get_split_uri([examples], split), "*")]
    schema = tft.TFTransformOutput(transform_graph_uri).transformed_metadata.schema
    return input_pipeline.training_input(files, accessor, schema, global_batch_size,
                                  input_pipeline.count_examples(files), PipelineConfig.shuffle_seed)
