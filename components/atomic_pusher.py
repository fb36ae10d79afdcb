"""A Pusher executor whose pushes appear whole or not at all.

TFX's own executor copies the model file by file into `<serving dir>/<version>/`, so an
interrupted push leaves a partial version that a model server may try to load. This one
copies into a hidden staging folder beside it, then renames that into place: on one
filesystem the rename is atomic, and servers ignore names that are not version numbers.
"""
import os
import time
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

STAGING_PREFIX = ".incoming-"


class Executor(pusher_executor.Executor):
    """Pushes a blessed model to `<base_directory>/<unix time>/`, atomically."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed_model)
            return
        model_path = self.GetModelPath(input_dict)
        destination = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
            pusher_pb2.PushDestination())
        base_directory = destination.filesystem.base_directory
        version = str(int(time.time()))
        serving_path = os.path.join(base_directory, version)

        fileio.makedirs(base_directory)
        remove_interrupted_pushes(base_directory)
        staging_path = os.path.join(base_directory, STAGING_PREFIX + version)
        io_utils.copy_dir(model_path, staging_path)
        fileio.rename(staging_path, serving_path)
        logging.info("Model written to serving path %s.", serving_path)

        io_utils.copy_dir(model_path, pushed_model.uri)  # the artifact's own archive copy
        self._MarkPushed(pushed_model, pushed_destination=serving_path,
                         pushed_version=version)


def remove_interrupted_pushes(base_directory: str) -> None:
    for name in fileio.listdir(base_directory):
        if name.rstrip("/").startswith(STAGING_PREFIX):
            logging.info("Removing the remains of an interrupted push: %s", name)
            fileio.rmtree(os.path.join(base_directory, name))
