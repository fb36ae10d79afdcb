"""The Kaggle layout rules: which files belong to which split and class, and which are
ignored.

    <input_base>/training_set/<class>/<file>     -> split "train"
    <input_base>/test_set/<class>/<file>         -> split "eval"

Class folder names are the labels (index = position in the sorted names). New data may
arrive as numbered drops, each in this layout: `span-1/`, `span-2/`, ... (The folder
names themselves live in data/folders.py, shared with the generator.)

Layout errors (missing split folder, no class folders, an empty class folder, class
folders differing between splits or from `class_names`, a file lying directly in a split
folder, a data root whose path holds a wildcard) raise ValueError naming the offending
path, before any file is read.
"""
import os
import stat
from typing import Dict, List, Mapping, Sequence, Tuple

import tensorflow as tf
from tfx.proto import example_gen_pb2  # the proto alone: no TFX component code

from data.folders import (EVAL_SPLIT_FOLDER, GLOB_CHARACTERS, SPAN_FOLDER_PATTERN,
                          TRAIN_SPLIT_FOLDER)

# Split patterns must be "<split folder>/*/*": one level of class folders, then files.
_PATTERN_SUFFIX = "/*/*"

# Files that operating systems and photo tools leave in folders: never images.
_SYSTEM_FILE_NAMES = frozenset({"Thumbs.db", "desktop.ini", "Icon\r"})
_FILE_TYPES = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe (FIFO)",
               stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
               stat.S_ISBLK: "a block device"}


def default_input_config(in_spans: bool = False) -> example_gen_pb2.Input:
    """Split "train" from training_set/<class>/<file>, "eval" from test_set/<class>/<file>;
    in spans, under the newest `span-<N>/` folder (TFX resolves {SPAN} to the largest N)."""
    prefix = SPAN_FOLDER_PATTERN + "/" if in_spans else ""
    return example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(
                name="train", pattern=prefix + TRAIN_SPLIT_FOLDER + _PATTERN_SUFFIX),
            example_gen_pb2.Input.Split(
                name="eval", pattern=prefix + EVAL_SPLIT_FOLDER + _PATTERN_SUFFIX),
        ]
    )


def split_folder_from_pattern(pattern: str) -> str:
    """"training_set/*/*" -> "training_set"."""
    if not pattern.endswith(_PATTERN_SUFFIX) or len(pattern) == len(_PATTERN_SUFFIX):
        raise ValueError(
            f"ImageExampleGen split patterns must look like '<split folder>/*/*', got {pattern!r}"
        )
    folder = pattern[: -len(_PATTERN_SUFFIX)]
    if any(ch in folder for ch in GLOB_CHARACTERS):
        raise ValueError(f"ImageExampleGen split folder must not contain a glob: {pattern!r}")
    return folder


def class_and_file_name(path: str) -> Tuple[str, str]:
    """`.../<split folder>/<class>/<file>` -> (class folder name, "<class>/<file>")."""
    parts = path.rstrip("/").split("/")
    return parts[-2], "/".join(parts[-2:])


def is_ignored(file_name: str) -> bool:
    """Hidden files (.DS_Store, ._resource forks) and known system files."""
    return file_name.startswith(".") or file_name in _SYSTEM_FILE_NAMES


def ignore_reason(path: str) -> str | None:
    """Why the file at `path` is not an image to ingest, or None if it may be one: a
    hidden or system file, or anything but a regular file (reading a named pipe waits
    forever, a device never ends)."""
    if is_ignored(os.path.basename(path.rstrip("/"))):
        return "hidden or system file"
    if "://" in path:  # object storage holds regular files only
        return None
    try:
        mode = os.stat(path).st_mode  # a link is judged by what it leads to
    except OSError:
        return None  # reading it will say what is wrong
    if stat.S_ISREG(mode):
        return None
    kind = next((kind for is_kind, kind in _FILE_TYPES.items() if is_kind(mode)), "special")
    return f"not a regular file: {kind}"


def check_no_wildcards(input_base: str) -> None:
    """The data root is joined into file patterns: a wildcard in it would match other
    files, or none (Beam's glob finds nothing under `/data/cats[1]`)."""
    wildcards = sorted(set(GLOB_CHARACTERS) & set(input_base))
    if wildcards:
        raise ValueError(
            f"Data root {input_base} contains {' '.join(wildcards)}, which file pattern "
            "matching reads as wildcards: rename the folder, or link to it from a path "
            f"without any of {' '.join(GLOB_CHARACTERS)}.")


def _listdir(path: str) -> List[str]:
    # GCS lists sub-directories with a trailing slash.
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path))


def scan_layout(
    input_base: str,
    split_folders: Mapping[str, str],
    class_names: Sequence[str] = (),
) -> Dict[str, Dict[str, int]]:
    """Validates the folder layout; returns {split name: {class name: number of files}}.

    Cheap: lists folders, reads no file. Raises ValueError naming the offending path.
    Files that `ignore_reason` names are not counted. With `class_names`, other folders
    are ignored too; without, every folder is a class.
    """
    class_names = list(class_names)
    counts: Dict[str, Dict[str, int]] = {}
    classes_by_split: Dict[str, List[str]] = {}
    for split_name, folder in split_folders.items():
        split_dir = os.path.join(input_base, folder)
        if not tf.io.gfile.isdir(split_dir):
            raise ValueError(f"Split folder for split {split_name!r} not found: {split_dir}")
        found: List[str] = []
        for name in _listdir(split_dir):
            path = os.path.join(split_dir, name)
            if is_ignored(name):
                continue
            if not tf.io.gfile.isdir(path):
                raise ValueError(
                    f"File lying directly in split folder (expected only class folders): {path}"
                )
            found.append(name)
        if not found:
            raise ValueError(f"No class folders in split folder: {split_dir}")
        missing = sorted(set(class_names) - set(found))
        if missing:
            raise ValueError(
                f"Class folders missing in {split_dir}: {missing} (class_names expects "
                f"{class_names}, found {found})"
            )
        counts[split_name] = {}
        for name in class_names or found:
            class_dir = os.path.join(split_dir, name)
            n_files = sum(ignore_reason(os.path.join(class_dir, file.rstrip("/"))) is None
                          for file in tf.io.gfile.listdir(class_dir))
            if n_files == 0:
                raise ValueError(f"Empty class folder: {class_dir}")
            counts[split_name][name] = n_files
        classes_by_split[split_name] = found

    splits = [] if class_names else list(classes_by_split)
    first = splits[0] if splits else None
    for other in splits[1:]:
        if classes_by_split[other] != classes_by_split[first]:
            raise ValueError(
                "Class folders differ between splits: "
                f"{os.path.join(input_base, split_folders[first])} has {classes_by_split[first]}, "
                f"{os.path.join(input_base, split_folders[other])} has {classes_by_split[other]}"
            )
    return counts
