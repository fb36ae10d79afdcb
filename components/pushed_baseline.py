"""The blessing gate's baseline on open-source Kubeflow Pipelines: the latest pushed model.

Locally and on Vertex, a `LatestBlessedModelStrategy` resolver finds the last blessed
model in ML Metadata. Open-source KFP runs only container and importer tasks (its
compiler answers "resolver executors not implemented"), so there the baseline comes from
what the Pusher wrote instead: a model is pushed if and only if it was blessed, and the
newest version in the serving directory is the last blessed model.

- `LatestPushedModel` copies that version into its Model artifact (`Format-Serving/`, the
  layout of the Trainer's Model); with nothing pushed yet, the artifact stays empty.
- The pipeline's Evaluator (components/evaluator.py) takes an empty baseline for none:
  the first run is judged on its absolute thresholds alone, as with a resolver that found
  nothing.
- Its `data_fingerprint` (components/data_fingerprint/) makes it a task of KFP's cache:
  on unchanged data a scheduled run gets the baseline its cached Evaluator was judged
  against, and when new data comes in, the latest pushed model again. Were it never
  cached, each run's new baseline artifact would re-run the Evaluator and the Pusher on
  the cached Trainer's model, and push that model again, judged against itself.
"""
import os
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils, path_utils

from components.atomic_pusher import check_not_flat_layout, is_version
from components.data_fingerprint.component import DATA_FINGERPRINT_KEY, DataFingerprint

SERVING_MODEL_DIR_KEY = "serving_model_dir"
MODEL_KEY = "model"
# Set on the Model artifact: the serving version it copies, "" when nothing was pushed.
PUSHED_VERSION_PROPERTY = "pushed_version"


def latest_pushed_version(serving_model_dir: str) -> Optional[str]:
    """The highest numbered complete version under the serving directory, if any.

    Staging folders of pushes in progress (`.incoming-*`) and other names are skipped,
    as TF Serving skips them. Versions in the folder above (the flat layout, where every
    pipeline pushed into one folder) are refused, not taken for this pipeline's.
    """
    check_not_flat_layout(serving_model_dir)
    if not fileio.isdir(serving_model_dir):
        return None
    versions = [name.rstrip("/") for name in fileio.listdir(serving_model_dir)]
    complete = [int(name) for name in versions if is_version(name) and
                fileio.exists(os.path.join(serving_model_dir, name, "saved_model.pb"))]
    return str(max(complete)) if complete else None


class LatestPushedModelExecutor(base_executor.BaseExecutor):
    """Copies the latest pushed model into the output Model artifact."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        serving_model_dir = exec_properties[SERVING_MODEL_DIR_KEY]
        model = artifact_utils.get_single_instance(output_dict[MODEL_KEY])
        version = latest_pushed_version(serving_model_dir)
        model.set_string_custom_property(PUSHED_VERSION_PROPERTY, version or "")
        if version is None:
            logging.info("No model pushed to %s yet: no baseline.", serving_model_dir)
            return
        source = os.path.join(serving_model_dir, version)
        io_utils.copy_dir(source, path_utils.serving_model_dir(model.uri))
        logging.info("Baseline: the latest pushed model, %s.", source)


class LatestPushedModelSpec(types.ComponentSpec):
    PARAMETERS = {SERVING_MODEL_DIR_KEY: ExecutionParameter(type=str),
                  # Unread: part of the task's KFP cache key.
                  DATA_FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True)}
    INPUTS = {}
    OUTPUTS = {MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}


class LatestPushedModel(base_component.BaseComponent):
    """The latest model the Pusher wrote to `serving_model_dir` (empty if none), looked up
    again when the data's fingerprint changes."""

    SPEC_CLASS = LatestPushedModelSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(LatestPushedModelExecutor)

    def __init__(self, serving_model_dir: str, data_fingerprint: Optional[DataFingerprint] = None):
        super().__init__(spec=LatestPushedModelSpec(
            serving_model_dir=serving_model_dir,
            data_fingerprint=data_fingerprint.as_parameter if data_fingerprint else None,
            model=types.Channel(type=standard_artifacts.Model)))

