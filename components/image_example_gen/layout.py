"""The Kaggle layout rules: which files belong to which split and class, and which are
ignored.

    <input_base>/training_set/<class>/<file>     -> split "train"
    <input_base>/test_set/<class>/<file>         -> split "eval"

Class folder names are the labels (index = position in the sorted names). New data may
arrive as numbered drops, each in this layout: `span-1/`, `span-2/`, ... (The folder
names themselves live in data/folders.py, shared with the generator.)

Layout errors (missing split folder, no class folders, an empty class folder, class
folders differing between splits or from `class_names`, a file lying directly in a split
folder, two split or class folders that are one folder through a symbolic link, a data
root whose path holds a wildcard) raise ValueError naming the offending path, before any
file is read.

Folders are listed here, not by a file pattern: TensorFlow's glob and listing raise
UnicodeDecodeError, naming no file, on a name that is not UTF-8, which Linux allows;
listed by Python, such a name holds its undecodable bytes as surrogates (PEP 383), and
ingestion rejects the file by the `repr` of its bytes (`display_name`).
"""
import os
import stat
from typing import Dict, List, Mapping, Sequence, Tuple

import tensorflow as tf
from tfx.proto import example_gen_pb2  # the proto alone: no TFX component code

from data.folders import (EVAL_SPLIT_FOLDER, GLOB_CHARACTERS, SPAN_COMPLETE_MARKER,
                          SPAN_FOLDER_PATTERN, TRAIN_SPLIT_FOLDER, span_number)

# Split patterns must be "<split folder>/*/*": one level of class folders, then files.
_PATTERN_SUFFIX = "/*/*"

# Files that operating systems and photo tools leave in folders: never images.
_SYSTEM_FILE_NAMES = frozenset({"Thumbs.db", "desktop.ini", "Icon\r"})
_FILE_TYPES = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe (FIFO)",
               stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
               stat.S_ISBLK: "a block device"}


def default_input_config(in_spans: bool = False) -> example_gen_pb2.Input:
    """Split "train" from training_set/<class>/<file>, "eval" from test_set/<class>/<file>;
    in spans, under the newest complete `span-<N>/` folder (`newest_complete_span`)."""
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


def is_utf8(name: str) -> bool:
    """Whether a listed name is valid UTF-8 (its undecodable bytes are surrogates if not)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display_name(name: str) -> str:
    """The name, or for one that is not UTF-8 the `repr` of its bytes, e.g.
    "b'cats/caf\\xe9.jpg'": what the report and the errors print."""
    return name if is_utf8(name) else repr(os.fsencode(name))


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
    return not_regular_file_reason(mode)


def not_regular_file_reason(mode: int) -> str | None:
    """Why a file of this `st_mode` is not read, or None for a regular file."""
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
    if "://" not in path:
        return sorted(os.listdir(path))  # any name: see the module's docstring
    # Object stores' names are UTF-8; GCS lists sub-directories with a trailing slash.
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path))


def _isdir(path: str) -> bool:
    return os.path.isdir(path) if "://" not in path else tf.io.gfile.isdir(path)


def list_split_files(input_base: str, split_folder: str) -> List[str]:
    """The paths `<split folder>/*/*` matches: every entry of every folder in the split
    folder, hidden ones included, sorted; none without a split folder (the layout check
    names it)."""
    split_dir = os.path.join(input_base, split_folder)
    if not _isdir(split_dir):
        return []
    return [os.path.join(split_dir, folder, name)
            for folder in _listdir(split_dir) if _isdir(os.path.join(split_dir, folder))
            for name in _listdir(os.path.join(split_dir, folder))]


def newest_complete_span(input_base: str) -> int | None:
    """The largest N of the `span-<N>` folders that hold SPAN_COMPLETE_MARKER."""
    exists = os.path.exists if "://" not in input_base else tf.io.gfile.exists
    return max((number for name in _listdir(input_base)
                if (number := span_number(name)) is not None
                and exists(os.path.join(input_base, name, SPAN_COMPLETE_MARKER))),
               default=None)


def _check_distinct_folders(folders: Sequence[str]) -> None:
    """Two split or class folders that resolve to one (`ln -s training_set test_set`, a
    class folder linked to another) would evaluate on training images, or label the same
    images twice. Local folders only: object stores have no links."""
    seen: Dict[str, str] = {}
    for folder in folders:
        if "://" in folder:
            continue
        real = os.path.realpath(folder)
        if real in seen:
            raise ValueError(
                f"{display_name(folder)} and {display_name(seen[real])} are one folder, "
                f"{display_name(real)} (a symbolic link?): each split and each class needs a "
                "folder of its own, or training images would be evaluated on, or labelled "
                "twice.")
        seen[real] = folder


def scan_layout(
    input_base: str,
    split_folders: Mapping[str, str],
    class_names: Sequence[str] = (),
) -> Dict[str, Dict[str, int]]:
    """Validates the folder layout; returns {split name: {class name: number of files}}.

    Cheap: lists folders, reads no file. Raises ValueError naming the offending path.
    Files that `ignore_reason` names are not counted (a name that is not UTF-8 is:
    ingestion rejects it). With `class_names`, other folders are ignored too; without,
    every folder is a class.
    """
    class_names = list(class_names)
    counts: Dict[str, Dict[str, int]] = {}
    classes_by_split: Dict[str, List[str]] = {}
    read_folders: List[str] = []  # the split folders, and the class folders read
    for split_name, folder in split_folders.items():
        split_dir = os.path.join(input_base, folder)
        if not _isdir(split_dir):
            raise ValueError(f"Split folder for split {split_name!r} not found: {split_dir}")
        read_folders.append(split_dir)
        found: List[str] = []
        for name in _listdir(split_dir):
            path = os.path.join(split_dir, name)
            if is_ignored(name):
                continue
            if not _isdir(path):
                raise ValueError("File lying directly in split folder (expected only class "
                                 f"folders): {display_name(path)}")
            if not (class_names or is_utf8(name)):
                raise ValueError(f"Class folder name is not UTF-8: {display_name(path)} "
                                 "(class names are labels, stored as UTF-8)")
            found.append(name)
        if not found:
            raise ValueError(f"No class folders in split folder: {split_dir}")
        missing = sorted(set(class_names) - set(found))
        if missing:
            raise ValueError(
                f"Class folders missing in {split_dir}: {missing} (class_names expects "
                f"{class_names}, found {[display_name(name) for name in found]})"
            )
        counts[split_name] = {}
        for name in class_names or found:
            class_dir = os.path.join(split_dir, name)
            n_files = sum(ignore_reason(os.path.join(class_dir, file)) is None
                          for file in _listdir(class_dir))
            if n_files == 0:
                raise ValueError(f"Empty class folder: {class_dir}")
            counts[split_name][name] = n_files
            read_folders.append(class_dir)
        classes_by_split[split_name] = found
    _check_distinct_folders(read_folders)

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
