"""How training spreads over devices and machines: the strategy, the GPUs it must find,
and what the workers of a multi-worker cluster do alike."""
import contextlib
import hashlib
import os
import tempfile
from typing import Iterator

import tensorflow as tf

from models.model_config import DISTRIBUTION_STRATEGIES


def distribution_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy `name` (ModelConfig.distribution_strategy) names.

    "mirrored": all visible GPUs of this machine, else the CPU's logical devices.
    "multi_worker_mirrored": all GPUs of every worker of the cluster that this process's
    TF_CONFIG environment variable describes (set per worker by its launcher).
    """
    if name not in DISTRIBUTION_STRATEGIES:
        raise ValueError(f"Unknown distribution strategy {name!r}: expected one of "
                         f"{', '.join(DISTRIBUTION_STRATEGIES)}.")
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])


def check_gpus_found(expected_gpu_count: int) -> None:
    """Fails unless TensorFlow finds at least the GPUs this worker was given.

    Without its CUDA libraries (the CPU image) or a node's driver, TensorFlow finds none
    and would train on the CPU, saying so in one INFO line among thousands.
    """
    found = tf.config.list_physical_devices("GPU")
    if len(found) < expected_gpu_count:
        raise RuntimeError(
            f"The Trainer was given {expected_gpu_count} GPU(s) (trainer_gpu_count="
            f"{expected_gpu_count}) but TensorFlow found {len(found)}: "
            f"tf.config.list_physical_devices('GPU') = {[gpu.name for gpu in found]}. "
            "Refusing to train on the CPU instead. TensorFlow's CUDA libraries are in the "
            "GPU image only (the tag ending in -gpu, built by make kubeflow-image), and the "
            "node needs the NVIDIA driver and device plugin (kubeflow/README.md).")


@contextlib.contextmanager
def this_workers_output_dir(strategy: tf.distribute.Strategy,
                            serving_model_dir: str) -> Iterator[str]:
    """Where this worker writes the serving model and the training state (beside it).

    The chief writes to the Trainer's output; any other worker of a multi-worker cluster
    to a temporary folder of its own, removed afterwards. Every worker must save all the
    same: saving reads the variables, which runs collective operations on all of them.
    """
    if strategy.extended.should_checkpoint:
        yield serving_model_dir
        return
    with tempfile.TemporaryDirectory(prefix="trainer-worker-") as temporary:
        yield os.path.join(temporary, os.path.basename(serving_model_dir))


def wait_for_every_worker(strategy: tf.distribute.Strategy) -> None:
    """Returns once every replica of the cluster got here (a collective sum)."""
    ones = strategy.run(tf.function(lambda: tf.constant(1.0)))
    strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)


def weights_digest(model: tf.keras.Model) -> str:
    """A short hash of the weights: equal on every worker of a cluster that trained in
    lockstep."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]
