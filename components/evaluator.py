"""The pipeline's Evaluator: TFX's, with two additions.

- An empty baseline Model artifact counts as no baseline (on open-source KFP the baseline
  is the latest pushed model, components/pushed_baseline.py, empty before the first push):
  the first run is judged on its absolute thresholds alone.
- The candidate's prediction for each eval example is written beside TFMA's results
  (metadata/eval_predictions.py), from the same tf.Example signature TFMA feeds: the
  report's gallery of confident mistakes reads them there, and so does not load
  TensorFlow and the model again. They are made before TFMA's evaluation: a candidate
  that gives an eval example no prediction (its outputs NaN after a diverged training)
  fails the Evaluator with that reason, never blessed, where TFMA would fail deep in its
  metrics (`cannot convert float NaN to integer`).
"""
import os
from typing import Any, Dict, List

import tensorflow as tf
from absl import logging
from tfx import types
from tfx import v1 as tfx
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import path_utils

from metadata import eval_predictions
from models import features, serving

# The split TFX's Evaluator evaluates when it is given none.
EVAL_SPLIT = "eval"
_BATCH_SIZE = 64


def predict_split(model_uri: str, split_uri: str) -> list[eval_predictions.Prediction]:
    """The model's prediction for each example of a split (ExampleGen's GZIP TFRecords).
    Raises ValueError, naming an example and why, if any gets none."""
    files = fileio.glob(os.path.join(split_uri, "*"))
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
                   for key in (features.PROBABILITIES_KEY, features.PREDICTED_LABEL_KEY,
                               features.ERROR_KEY)}
        predictions, unanswered = [], []
        for batch in batches:
            outputs = session.run(fetches, {examples.name: batch})
            for serialized, probabilities, predicted, error in zip(
                    batch, outputs[features.PROBABILITIES_KEY],
                    outputs[features.PREDICTED_LABEL_KEY], outputs[features.ERROR_KEY]):
                example = tf.train.Example.FromString(serialized).features.feature
                if error:
                    unanswered.append((example[features.FILE_NAME_KEY].bytes_list.value[0]
                                       .decode(), error.decode()))
                    continue
                true_label = example[features.LABEL_NAME_KEY].bytes_list.value[0].decode()
                predicted_label = predicted.decode()
                predictions.append(eval_predictions.Prediction(
                    file_name=example[features.FILE_NAME_KEY].bytes_list.value[0].decode(),
                    true_label=true_label,
                    predicted_label=predicted_label,
                    confidence=float(probabilities.max()),
                    image=(example[features.IMAGE_KEY].bytes_list.value[0]
                           if predicted_label != true_label else None),
                ))
    if unanswered:
        file_name, error = unanswered[0]
        cause = (" Its training diverged: lower learning_rate, or check the data."
                 if error == serving.ERROR_NOT_FINITE else "")
        raise ValueError(f"The candidate model gives {len(unanswered)} of "
                         f"{len(unanswered) + len(predictions)} eval examples no prediction, "
                         f"e.g. {file_name}: {error}. It is not evaluated, nor blessed.{cause}")
    return predictions


def _has_model(model: types.Artifact) -> bool:
    return fileio.exists(path_utils.serving_model_dir(model.uri))


class EvaluatorExecutor(evaluator_executor.Executor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        key = standard_component_specs.BASELINE_MODEL_KEY
        baseline = [model for model in input_dict.get(key, []) if _has_model(model)]
        if input_dict.get(key) and not baseline:
            logging.info("The baseline artifact holds no model: evaluating without a "
                         "baseline (change thresholds skipped).")
        predictions = predict_split(
            artifact_utils.get_single_uri(input_dict[standard_component_specs.MODEL_KEY]),
            artifact_utils.get_split_uri(input_dict[standard_component_specs.EXAMPLES_KEY],
                                         EVAL_SPLIT))
        super().Do({**input_dict, key: baseline}, output_dict, exec_properties)

        evaluation_uri = artifact_utils.get_single_uri(
            output_dict[standard_component_specs.EVALUATION_KEY])
        with fileio.open(os.path.join(evaluation_uri, eval_predictions.FILE_NAME), "w") as file:
            file.write(eval_predictions.to_lines(predictions))
        logging.info("Wrote the candidate's %d eval predictions (%d wrong) beside TFMA's "
                     "results.", len(predictions), sum(p.wrong for p in predictions))


class Evaluator(tfx.components.Evaluator):
    """TFX's Evaluator, taking an empty baseline artifact as no baseline, and writing the
    candidate's prediction for each eval example beside its results."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(EvaluatorExecutor)
