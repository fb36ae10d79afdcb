"""Training curves from the Trainer's TensorBoard logs (Keras' per-epoch scalars)."""
from __future__ import annotations

import os

import tensorflow as tf

# Keras' TensorBoard callback writes one folder per phase and "epoch_<metric>" scalars.
PHASES = ("train", "validation")
_EPOCH_PREFIX = "epoch_"

# {phase: {metric: [(epoch, value), ...]}}
Curves = dict[str, dict[str, list[tuple[int, float]]]]


def read_training_curves(model_run_uri: str) -> Curves:
    curves: Curves = {}
    for phase in PHASES:
        for path in sorted(tf.io.gfile.glob(os.path.join(model_run_uri, phase, "events.out.*"))):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.tag.startswith(_EPOCH_PREFIX):
                        metric = value.tag.removeprefix(_EPOCH_PREFIX)
                        number = float(tf.make_ndarray(value.tensor))
                        curves.setdefault(phase, {}).setdefault(metric, []).append(
                            (event.step, number))
    return curves
