"""ImageExampleGen: a file-based TFX ExampleGen for class-per-folder image datasets.

Every file accepted becomes one tf.Example with the encoded image bytes (as read from
disk; a photo with an EXIF orientation is re-encoded upright, as PNG), the class index
(into the sorted class names), the class folder name, the path relative to the split
folder, the decoded height and width, and two slicing features derived from them (size
bucket and orientation, see models/features.py). A file that the decoder Transform uses
later (`tf.io.decode_image(data, channels=3, expand_animations=False)`) cannot read, or
that breaks a limit, is rejected (image_file.py); hidden, system and special files are
ignored unread (layout.py). Every file not written is listed with its reason in
`ingestion_report.json` (report.py).
"""
from typing import Optional, Sequence, Union

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2

from components.image_example_gen.defaults import (
    DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_REJECTED_FRACTION,
    DEFAULT_MAX_SPLIT_OVERLAP_FRACTION)
from components.image_example_gen.driver import Driver
from components.image_example_gen.executor import Executor
from components.image_example_gen.layout import default_input_config, split_folder_from_pattern
from components.image_example_gen.settings import check_class_names, make_custom_config


class ImageExampleGen(FileBasedExampleGen):
    """ExampleGen for `<input_base>/{training_set,test_set}/<class>/<file>` image folders."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
    DRIVER_CLASS = Driver

    def __init__(
        self,
        input_base: str,
        class_names: Sequence[str] = (),
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_split_overlap_fraction: float = DEFAULT_MAX_SPLIT_OVERLAP_FRACTION,
        input_config: Optional[Union[example_gen_pb2.Input, data_types.RuntimeParameter]] = None,
        output_config: Optional[Union[example_gen_pb2.Output, data_types.RuntimeParameter]] = None,
    ):
        """
        Args:
          input_base: folder holding one folder per split (`training_set`, `test_set`).
          class_names: expected class folder names, sorted; labels are their indices;
            other folders are ignored. Empty: every folder is a class, in sorted order.
          max_image_pixels: files whose header claims more pixels are rejected undecoded.
          max_rejected_fraction: the run fails when a split rejects a larger fraction.
          max_file_bytes: larger files are rejected, never read whole.
          max_split_overlap_fraction: the run fails when a larger fraction of a split's
            written images are, byte for byte, images written to another split.
          input_config: splits as `<split folder>/*/*` patterns; default
            train=`training_set/*/*`, eval=`test_set/*/*`. A `span-{SPAN}/` folder
            first: the newest complete span (driver.py).
          output_config: optional; by default the output splits are the input splits.
        """
        input_config = input_config or default_input_config()
        if isinstance(input_config, example_gen_pb2.Input):
            for split in input_config.splits:
                split_folder_from_pattern(split.pattern)
        super().__init__(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=make_custom_config(
                check_class_names(class_names), max_image_pixels, max_rejected_fraction,
                max_file_bytes, max_split_overlap_fraction),
        )
