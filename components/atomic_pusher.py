"""A Pusher executor whose pushes appear whole or not at all, under strictly increasing
version numbers.

TFX's own executor copies the model file by file into `<serving dir>/<version>/`, so an
interrupted push leaves a partial version that a model server may try to load. This one
copies into a hidden staging folder beside it, then renames that into place: on one
filesystem the rename is atomic, and servers ignore names that are not version numbers.

TF Serving serves the highest version, so each push takes a number above every version
(and staging folder) already there: the current Unix time, or one more than the highest
when the clock says less (a second push in the same second, a clock stepped back). Pushes
to one local serving directory (`make pipeline` beside a cron `make retrain`) take turns
under an flock on its `.push.lock`: the second waits for the first to land.

Where flocks are not shared between hosts (NFS with `nolock`, gcsfuse, SMB), two hosts
can push at once, so a staging folder's name says who owns it,
`.incoming-<version>-<host>-<pid>`, and cleanup removes only the ones whose owner is dead
(this host) or that nothing has touched for STALE_STAGING_AGE_S (another host's). Before
the rename the staged copy is checked against the model, file by file and byte count by
byte count: an incomplete tree is never renamed into place. On object storage (gs://)
there is no lock: versions still rise past everything listed, and leftover staging
folders are left where they are.

Once the rename is done the model is served, so the push is recorded as pushed whatever
happens next: a failing archive copy (disk full) is logged, not raised, so that MLMD says
what the serving folder holds and a rerun (cached) does not push the model again.

Versions are numbered folders of ASCII digits: `str.isdigit` alone also takes `²`.
The serving directory is one pipeline's (`<serving_model>/<pipeline name>`, TF
Serving's layout for several models); version folders directly in its parent are the
older flat layout, which a push refuses rather than serve beside it.
"""
import contextlib
import fcntl
import os
import socket
import time
from typing import Any, Dict, Iterator, List, Optional

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

STAGING_PREFIX = ".incoming-"
LOCK_FILE_NAME = ".push.lock"
# Another host's staging folder untouched this long is a dead push's: pushes take minutes.
STALE_STAGING_AGE_S = 24 * 3600


def is_version(name: str) -> bool:
    """A version folder's name: ASCII digits only, as TF Serving reads them."""
    return name.isascii() and name.isdigit()


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

        check_not_flat_layout(base_directory)
        fileio.makedirs(base_directory)
        with push_lock(base_directory) as locked:
            if locked:
                remove_interrupted_pushes(base_directory)
            version = str(next_version(base_directory))
            serving_path = os.path.join(base_directory, version)
            staging_path = os.path.join(base_directory, staging_name(version))
            io_utils.copy_dir(model_path, staging_path)
            check_same_files(model_path, staging_path)
            fileio.rename(staging_path, serving_path)
        logging.info("Model written to serving path %s.", serving_path)

        try:
            io_utils.copy_dir(model_path, pushed_model.uri)  # the artifact's own archive copy
        except Exception:  # pylint: disable=broad-except
            logging.exception("The model is served from %s, but its archive copy in %s "
                              "failed: the push is recorded all the same.",
                              serving_path, pushed_model.uri)
        self._MarkPushed(pushed_model, pushed_destination=serving_path,
                         pushed_version=version)


def check_not_flat_layout(base_directory: str) -> None:
    """Refuses to push beside versions of the flat layout (`<serving_model>/<version>`,
    before each pipeline had its folder), which a model server would mix with ours."""
    parent = os.path.dirname(base_directory.rstrip("/"))
    names = [name.rstrip("/") for name in fileio.listdir(parent)] if fileio.isdir(parent) else []
    # A model, not a pipeline's folder (a pipeline may be named "2024").
    flat = sorted(name for name in names if is_version(name) and
                  fileio.exists(os.path.join(parent, name, "saved_model.pb")))
    if flat:
        raise RuntimeError(
            f"{parent} holds model versions directly ({', '.join(flat)}): the serving "
            f"layout before each pipeline had its own folder. Move them into the folder of "
            f"the pipeline that pushed them (mkdir {base_directory} && mv "
            f"{os.path.join(parent, '<version>')} {base_directory}/) and point TF Serving "
            f"at {base_directory}; nothing was pushed.")


def staging_name(version: str) -> str:
    """`.incoming-<version>-<host>-<pid>`: which host and process own the folder."""
    return f"{STAGING_PREFIX}{version}-{socket.gethostname()}-{os.getpid()}"


def staging_owner(name: str) -> Optional[tuple[str, int]]:
    """(host, pid) from a staging folder's name; None for one that does not say."""
    host, _, pid = name.removeprefix(STAGING_PREFIX).partition("-")[2].rpartition("-")
    return (host, int(pid)) if host and is_version(pid) else None


def check_same_files(source: str, copy: str) -> None:
    """Raises unless `copy` holds every file of `source` with the same byte count."""
    def sizes(root: str) -> dict[str, int]:
        return {os.path.relpath(os.path.join(folder, name), root):
                fileio.stat(os.path.join(folder, name)).length
                for folder, _, files in fileio.walk(root) for name in files}
    expected, staged = sizes(source), sizes(copy)
    wrong = sorted(path for path in expected if staged.get(path) != expected[path])
    if wrong:
        raise RuntimeError(f"The staged copy {copy} of {source} is incomplete (missing or "
                           f"of another size: {', '.join(wrong[:10])}): not pushed.")


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
    numbers = [name.rstrip("/").removeprefix(STAGING_PREFIX).partition("-")[0]
               for name in names]
    taken = [int(number) for number in numbers if is_version(number)]
    return max([int(time.time()), *(version + 1 for version in taken)])


def remove_interrupted_pushes(base_directory: str) -> None:
    """Staging folders left by pushes that died; call under the push lock only."""
    for name in fileio.listdir(base_directory):
        name = name.rstrip("/")
        path = os.path.join(base_directory, name)
        if name.startswith(STAGING_PREFIX) and not _may_be_live(name, path):
            logging.info("Removing the remains of an interrupted push: %s", name)
            fileio.rmtree(path)


def _may_be_live(name: str, path: str) -> bool:
    """Whether the push owning a staging folder may still be copying into it."""
    owner = staging_owner(name)
    if owner is not None and owner[0] == socket.gethostname():
        try:
            os.kill(owner[1], 0)  # signal 0: only whether the process exists
        except ProcessLookupError:
            return False
        except PermissionError:  # it exists, under another user
            pass
        return True
    # Another host's (or an older name that names none): judged by its newest write.
    newest = max(os.path.getmtime(os.path.join(folder, entry))
                 for folder, _, files in os.walk(path) for entry in [".", *files])
    return time.time() - newest < STALE_STAGING_AGE_S
