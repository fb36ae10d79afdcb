"""The fingerprint of the image files under a data root, for KFP's cache key.

Every file that ImageExampleGen's split patterns match (`<split folder>/<class>/<file>`,
listed as ingestion lists them: components/image_example_gen/layout.py) contributes its
path relative to the data root, its size and its modification time. So adding,
removing, renaming (a move between class folders relabels an image) or rewriting a file
changes the fingerprint. Content hashes would also catch a rewrite that kept the size
and the time, but reading every byte on every scheduled run costs as much I/O as
ingesting; size and modification time are what TFX's own ExampleGen fingerprint
(tfx.utils.io_utils.generate_fingerprint) and its Vertex pre-cache hook trust, and every
store sets the time on each write (GCS and S3: the object's update time).
"""
import concurrent.futures
import hashlib
import os
from typing import Iterable, Tuple

import tensorflow as tf
from tfx.proto import example_gen_pb2

from components.image_example_gen.layout import list_split_files, split_folder_from_pattern

# An object store answers one stat per request: these many in flight.
_OBJECT_STORE_STATS_IN_FLIGHT = 32


def data_fingerprint(input_base: str, input_config: example_gen_pb2.Input) -> str:
    """`"<files> files, <bytes> bytes, sha256:<hex>"`: the counts for a reader of the
    run's parameters, the digest for the cache."""
    paths = [path for split in input_config.splits
             for path in list_split_files(input_base, split_folder_from_pattern(split.pattern))]
    digest = hashlib.sha256()
    total_bytes = 0
    for path, (size, mtime_ns) in zip(paths, _sizes_and_mtimes(paths)):
        relative = path[len(input_base):].lstrip("/")  # the root is a parameter of its own
        digest.update(f"{relative}\0{size}\0{mtime_ns}\n".encode("utf-8", "surrogateescape"))
        total_bytes += size
    return f"{len(paths)} files, {total_bytes} bytes, sha256:{digest.hexdigest()}"


def _sizes_and_mtimes(paths: list[str]) -> Iterable[Tuple[int, int]]:
    if not paths or "://" not in paths[0]:
        # Any name (os.stat takes what os.listdir gave, which TensorFlow's stat cannot).
        return [(stat.st_size, stat.st_mtime_ns) for stat in map(os.stat, paths)]
    with concurrent.futures.ThreadPoolExecutor(_OBJECT_STORE_STATS_IN_FLIGHT) as pool:
        return list(pool.map(_object_size_and_mtime, paths))


def _object_size_and_mtime(path: str) -> Tuple[int, int]:
    stat = tf.io.gfile.stat(path)
    return stat.length, stat.mtime_nsec
