"""A Pusher executor whose pushes appear whole or not at all, under strictly increasing
version numbers.

TFX's own executor copies the model file by file into `<serving dir>/<version>/`, so an
interrupted push leaves a partial version that a model server may try to load. This one
copies into a hidden staging folder beside it, then renames that into place: on one
filesystem the rename is atomic, and servers ignore names that are not version numbers.

TF Serving serves the highest version, so each push takes a number above every version
(and staging folder) already there: the current Unix time, or one more than the highest
when the clock says less (a second push in the same second, a clock stepped back). Pushes
to one local serving directory (two pipelines, or `make pipeline` beside a cron `make
retrain`) take turns under an flock on its `.push.lock`: the second waits for the first
to land, and any staging folder found under the lock is the remains of a dead push. On
object storage (gs://) there is no such lock: versions still rise past everything
listed, but leftover staging folders are left where they are, since a live push's cannot
be told from a dead one's.
"""
import contextlib
import fcntl
import os
import time
from typing import Any, Dict, Iterator, List

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

STAGING_PREFIX = ".incoming-"
LOCK_FILE_NAME = ".push.lock"


class Executor(pusher_executor.Executor):
    """Pushes a blessed model to `<base_directory>/<next version>/`, atomically."""

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

        fileio.makedirs(base_directory)
        with push_lock(base_directory) as locked:
            if locked:
                remove_interrupted_pushes(base_directory)
            version = str(next_version(base_directory))
            serving_path = os.path.join(base_directory, version)
            staging_path = os.path.join(base_directory, STAGING_PREFIX + version)
            io_utils.copy_dir(model_path, staging_path)
            fileio.rename(staging_path, serving_path)
        logging.info("Model written to serving path %s.", serving_path)

        io_utils.copy_dir(model_path, pushed_model.uri)  # the artifact's own archive copy
        self._MarkPushed(pushed_model, pushed_destination=serving_path,
                         pushed_version=version)


@contextlib.contextmanager
def push_lock(base_directory: str) -> Iterator[bool]:
    """Holds the serving directory's push lock (waiting for it); yields whether there is
    one: local directories only."""
    if "://" in base_directory:
        yield False
        return
    with open(os.path.join(base_directory, LOCK_FILE_NAME), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield True


def next_version(base_directory: str) -> int:
    """Above every version and staging folder in the directory, and the time if later."""
    # On an object store a folder exists only while something is in it: before the first
    # push, makedirs leaves nothing to list.
    names = fileio.listdir(base_directory) if fileio.isdir(base_directory) else []
    taken = [int(number) for name in names
             if (number := name.rstrip("/").removeprefix(STAGING_PREFIX)).isdigit()]
    return max([int(time.time()), *(version + 1 for version in taken)])


def remove_interrupted_pushes(base_directory: str) -> None:
    """Staging folders left by pushes that died; call under the push lock only."""
    for name in fileio.listdir(base_directory):
        if name.rstrip("/").startswith(STAGING_PREFIX):
            logging.info("Removing the remains of an interrupted push: %s", name)
            fileio.rmtree(os.path.join(base_directory, name))
