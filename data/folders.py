"""The dataset's folder names (Kaggle's cats-vs-dogs layout), one home for the generator,
ingestion and the tools:

    DATA_ROOT/training_set/<class>/<file>     the training split
    DATA_ROOT/test_set/<class>/<file>         the eval split
    DATA_ROOT/span-<N>/training_set/...       with spans: numbered drops, each as above
    DATA_ROOT/span-<N>/_SUCCESS               written last, once the drop is whole
"""
import re

TRAIN_SPLIT_FOLDER = "training_set"
EVAL_SPLIT_FOLDER = "test_set"
# A drop's folder as TFX's ExampleGen matches it: {SPAN} stands for the number (a run
# ingests the largest, of the complete ones).
SPAN_FOLDER_PATTERN = "span-{SPAN}"
# The file a drop's writer leaves in its span folder once every other file is there, as
# Hadoop's and Beam's writers mark a finished output: a span folder without it is still
# arriving, and no run ingests it (a drop read while being copied would be read once,
# partially, and its late files never).
SPAN_COMPLETE_MARKER = "_SUCCESS"
_SPAN_FOLDER_NAME = re.compile(SPAN_FOLDER_PATTERN.replace("{SPAN}", r"(\d+)"))
# What file pattern matching (TFX's, Beam's, TensorFlow's) reads as wildcards.
GLOB_CHARACTERS = "*?["


def span_number(folder_name: str) -> int | None:
    """N for a folder named `span-<N>`, None for any other name."""
    match = _SPAN_FOLDER_NAME.fullmatch(folder_name)
    return int(match.group(1)) if match else None
