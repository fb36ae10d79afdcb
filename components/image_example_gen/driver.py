"""ImageExampleGen's driver: TFX's FileBasedDriver, with the span and the input's
fingerprint found from ingestion's own listing of the folders (layout.py), not from
TFX's glob:

- the span: the newest complete `span-<N>` folder, the one holding SPAN_COMPLETE_MARKER
  (data/folders.py), where TFX takes the largest N with any file in it: a drop still
  being copied waits for its marker, and is never ingested half;
- the fingerprint (TFX's cache key for the input): TFX's own, of the number, sizes and
  modification times of the files each split's pattern matches, over a listing that
  takes any file name (TFX's glob raises UnicodeDecodeError, naming no file, on a name
  that is not UTF-8).

TFX's Kubeflow compilers run a driver of their own, TFX's: spans are for the local
engine (pipeline/config.py).
"""
import functools
import operator
import os
from typing import Optional, Tuple

import tensorflow as tf
from tfx.components.example_gen import driver as tfx_driver
from tfx.components.example_gen import input_processor

from components.image_example_gen.layout import (
    list_split_files, newest_complete_span, split_folder_from_pattern)
from data.folders import SPAN_COMPLETE_MARKER, SPAN_FOLDER_PATTERN


class ImageFolderInputProcessor(input_processor.FileBasedInputProcessor):
    """Resolves `span-{SPAN}/` to the newest complete span folder, and fingerprints the
    files of the resolved patterns."""

    def resolve_span_and_version(self) -> Tuple[int, Optional[int]]:
        if self._is_match_date or self._is_match_version or (self._is_match_span and not all(
                split.pattern.startswith(SPAN_FOLDER_PATTERN + "/") for split in self._splits)):
            raise ValueError(
                f"ImageExampleGen's split patterns take a span as their first folder, "
                f"{SPAN_FOLDER_PATTERN}/, and no other placeholder: got "
                f"{[split.pattern for split in self._splits]}")
        span = 0
        if self._is_match_span:
            span = newest_complete_span(self._input_base_uri)
            if span is None:
                raise ValueError(
                    f"No complete span folder in {self._input_base_uri}: a span-<N> folder "
                    f"is ingested once it holds {SPAN_COMPLETE_MARKER}, written last when "
                    "the drop is whole.")
        self._fingerprint = "\n".join(
            _fingerprint(split.name, self._input_base_uri, split_folder_from_pattern(
                self.get_pattern_for_span_version(split.pattern, span, None)))
            for split in self._splits)
        return span, None


class Driver(tfx_driver.FileBasedDriver):
    def get_input_processor(self, splits, range_config=None, input_base_uri=None):
        return ImageFolderInputProcessor(input_base_uri, splits, range_config)


def _fingerprint(split_name: str, input_base: str, split_folder: str) -> str:
    """TFX's fingerprint of a split's files (tfx.utils.io_utils.generate_fingerprint)."""
    sizes_and_times = [_size_and_mtime_s(path)
                       for path in list_split_files(input_base, split_folder)]
    mtimes = [mtime for _, mtime in sizes_and_times]
    return (f"split:{split_name},num_files:{len(sizes_and_times)},"
            f"total_bytes:{sum(size for size, _ in sizes_and_times)},"
            f"xor_checksum:{functools.reduce(operator.xor, mtimes, 0)},"
            f"sum_checksum:{sum(mtimes)}")


def _size_and_mtime_s(path: str) -> Tuple[int, int]:
    if "://" not in path:
        stat = os.stat(path)  # any name, which TensorFlow's stat cannot take
        return stat.st_size, int(stat.st_mtime)
    stat = tf.io.gfile.stat(path)
    return stat.length, stat.mtime_nsec // 10 ** 9
