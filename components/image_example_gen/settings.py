"""ImageExampleGen's settings: the check of the class names, and how the settings travel
from the component to the executor (a JSON dict, as a Struct, in ExampleGen's
CustomConfig): the component writes every one, the executor reads them as written.

Imports neither TensorFlow nor TFX's component code. The defaults are the component's
own, from `defaults.py`, which imports nothing: pipeline/config.py takes them from there
without loading TFX.
"""
from typing import Any, Dict, List, Sequence

from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2
from tfx.utils import proto_utils

CLASS_NAMES_CONFIG_KEY = "class_names"
MAX_IMAGE_PIXELS_CONFIG_KEY = "max_image_pixels"
MAX_REJECTED_FRACTION_CONFIG_KEY = "max_rejected_fraction"
MAX_FILE_BYTES_CONFIG_KEY = "max_file_bytes"
MAX_SPLIT_OVERLAP_FRACTION_CONFIG_KEY = "max_split_overlap_fraction"


def check_class_names(class_names: Sequence[str]) -> List[str]:
    """`class_names` as a list, checked: folder names, sorted (labels are their indices),
    without duplicates."""
    names = list(class_names)
    if any(not isinstance(n, str) or not n or "/" in n for n in names):
        raise ValueError(f"class_names must be non-empty folder names, got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates: {names}")
    if names != sorted(names):
        raise ValueError(
            f"class_names must be in sorted order (labels index the sorted names): got {names}, "
            f"expected {sorted(names)}"
        )
    return names


def make_custom_config(
    class_names: Sequence[str],
    max_image_pixels: int,
    max_rejected_fraction: float,
    max_file_bytes: int,
    max_split_overlap_fraction: float,
) -> example_gen_pb2.CustomConfig:
    """Packs the settings (a JSON dict, as a Struct) into ExampleGen's CustomConfig."""
    struct = struct_pb2.Struct()
    struct.update({
        CLASS_NAMES_CONFIG_KEY: list(class_names),
        MAX_IMAGE_PIXELS_CONFIG_KEY: max_image_pixels,
        MAX_REJECTED_FRACTION_CONFIG_KEY: max_rejected_fraction,
        MAX_FILE_BYTES_CONFIG_KEY: max_file_bytes,
        MAX_SPLIT_OVERLAP_FRACTION_CONFIG_KEY: max_split_overlap_fraction,
    })
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def custom_config_to_dict(value: Any) -> Dict[str, Any]:
    """Reads the custom_config exec property (JSON string, CustomConfig or dict) back to a dict."""
    if value is None or value == "":
        return {}
    if isinstance(value, example_gen_pb2.CustomConfig):
        config = value
    elif isinstance(value, str):
        config = proto_utils.json_to_proto(value, example_gen_pb2.CustomConfig())
    elif isinstance(value, dict):
        config = proto_utils.dict_to_proto(value, example_gen_pb2.CustomConfig())
    else:
        raise TypeError(f"Unsupported custom_config value of type {type(value).__name__}")
    if not config.HasField("custom_config"):
        return {}
    struct = struct_pb2.Struct()
    if not config.custom_config.Unpack(struct):
        raise ValueError(
            "ImageExampleGen expects custom_config to hold a google.protobuf.Struct, got "
            f"{config.custom_config.type_url}"
        )
    return json_format.MessageToDict(struct)
