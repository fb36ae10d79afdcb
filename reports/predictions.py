"""Per-example predictions on the eval split, from the candidate SavedModel's
tf.Example signature (the one TFMA feeds), for the gallery of confident mistakes.

Only `predict_eval_split` needs TensorFlow, and imports it (seconds): the report's
other paths (no such run, --help) answer without it."""
from __future__ import annotations

import dataclasses
import os

from models import features

_BATCH_SIZE = 64


@dataclasses.dataclass(frozen=True)
class Prediction:
    file_name: str
    true_label: str
    predicted_label: str
    confidence: float  # the probability of the predicted label
    image: bytes  # the encoded image, as ingested

    @property
    def wrong(self) -> bool:
        return self.predicted_label != self.true_label


def predict_eval_split(model_uri: str, examples_uri: str) -> list[Prediction]:
    import tensorflow as tf
    from tfx.utils import path_utils

    files = tf.io.gfile.glob(os.path.join(examples_uri, "Split-eval", "*"))
    batches = list(tf.data.TFRecordDataset(files, compression_type="GZIP")
                   .batch(_BATCH_SIZE).as_numpy_iterator())
    # The signature run in a graph session: loading the SavedModel that way takes about
    # half the time of tf.saved_model.load, which rebuilds every function of the model.
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        signature = tf.compat.v1.saved_model.load(
            session, [tf.saved_model.SERVING], path_utils.serving_model_path(model_uri)
        ).signature_def[features.TF_EXAMPLE_SIGNATURE]
        [examples] = signature.inputs.values()
        fetches = {key: signature.outputs[key].name
                   for key in (features.PROBABILITIES_KEY, features.PREDICTED_LABEL_KEY)}
        predictions = []
        for batch in batches:
            outputs = session.run(fetches, {examples.name: batch})
            for serialized, probabilities, predicted in zip(
                    batch, outputs[features.PROBABILITIES_KEY],
                    outputs[features.PREDICTED_LABEL_KEY]):
                example = tf.train.Example.FromString(serialized).features.feature
                predictions.append(Prediction(
                    file_name=example[features.FILE_NAME_KEY].bytes_list.value[0].decode(),
                    true_label=example[features.LABEL_NAME_KEY].bytes_list.value[0].decode(),
                    predicted_label=predicted.decode(),
                    confidence=float(probabilities.max()),
                    image=example[features.IMAGE_KEY].bytes_list.value[0],
                ))
    return predictions


def most_confidently_wrong(predictions: list[Prediction], count: int) -> list[Prediction]:
    mistakes = [prediction for prediction in predictions if prediction.wrong]
    return sorted(mistakes, key=lambda prediction: -prediction.confidence)[:count]
