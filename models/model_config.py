"""What Transform and the Trainer are told: typed settings, and the values they may take.

TFX hands user code its settings as `custom_config`, a JSON dict. `TransformConfig` and
`ModelConfig` are those dicts' one definition: `PipelineConfig` builds them (from its
fields of the same names, where the defaults live), the pipeline passes
`to_custom_config()`, and `preprocessing_fn` / `run_fn` read them back with
`from_custom_config()`. No TensorFlow here: the pipeline's config imports this module.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Self

# ResNet depth -> (block type, blocks in each of the four stages), the paper's Table 1.
RESNET_STAGES = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}
# How the Trainer spreads over devices: one machine's GPUs, or several machines'.
DISTRIBUTION_STRATEGIES = ("mirrored", "multi_worker_mirrored")
# A GPU speed-up: on when the Trainer sees a GPU, forced on, or off.
GPU_SPEEDUP_SETTINGS = ("auto", "on", "off")


class _CustomConfig:
    """A frozen dataclass that travels as TFX's `custom_config`."""

    def to_custom_config(self) -> dict[str, Any]:
        """The fields as JSON values, as TFX stores them and user code gets them back."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_custom_config(cls, custom_config: Mapping[str, Any]) -> Self:
        """The config `to_custom_config()` wrote. A key too many or missing is an error,
        not a silent default: the pipeline was registered with other code than this."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown, missing = sorted(set(custom_config) - names), sorted(names - set(custom_config))
        if unknown or missing:
            raise ValueError(
                f"custom_config does not match {cls.__name__}: unknown keys {unknown}, "
                f"missing keys {missing}. It is built by PipelineConfig; register or "
                "compile the pipeline again with this code.")
        # JSON has no tuples: they come back as lists.
        return cls(**{name: tuple(value) if isinstance(value, list) else value
                      for name, value in custom_config.items()})


@dataclasses.dataclass(frozen=True)
class TransformConfig(_CustomConfig):
    """Transform's settings: only what the transform depends on, so that a training
    setting changed does not recompute it."""

    image_size_px: int


@dataclasses.dataclass(frozen=True)
class ModelConfig(_CustomConfig):
    """The Trainer's settings: the model, its training and its export. Each field is the
    `PipelineConfig` field (or property) of the same name, documented and checked there."""

    class_names: tuple[str, ...]
    image_size_px: int
    max_image_pixels: int
    max_request_pixels: int
    resnet_depth: int  # a key of RESNET_STAGES
    width_multiplier: float
    bn_momentum: float
    weight_decay: float
    batch_size_per_replica: int
    train_epochs: int
    early_image_size_px: int
    full_size_epochs: int
    label_smoothing: float
    shuffle_seed: int
    learning_rate: float
    warmup_steps: int
    plateau_patience_epochs: int
    cooldown_epochs: int
    plateau_min_train_accuracy: float
    distribution_strategy: str  # one of DISTRIBUTION_STRATEGIES, from trainer_workers
    trainer_gpu_count: int  # GPUs each worker must see, or it fails before training
    mixed_precision: str  # one of GPU_SPEEDUP_SETTINGS
    jit_compile: str  # one of GPU_SPEEDUP_SETTINGS
    test_time_flip: bool
