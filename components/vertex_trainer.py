"""The Trainer on N machines of a Vertex AI custom job: TFX's own launcher
(tfx.extensions.google_cloud_ai_platform), whose workers run TFX's Trainer executor on
the model's custom_config alone.

TFX's launcher reads its settings from the Trainer's custom_config (the `ai_platform_*`
keys) and hands every worker the task's exec properties unchanged: the worker executor
here takes those keys out before run_fn reads custom_config, as the TFJob launcher
(components/tfjob_trainer/) takes out its own.
"""
from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.extensions.google_cloud_ai_platform import constants as vertex_constants
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor
from tfx.types import standard_component_specs
from tfx.utils import json_utils

# Every custom_config key TFX's Vertex and AI Platform launcher reads.
LAUNCHER_KEYS = (
    vertex_constants.ENABLE_VERTEX_KEY, vertex_constants.VERTEX_REGION_KEY,
    vertex_executor.TRAINING_ARGS_KEY, vertex_executor.JOB_ID_KEY, vertex_executor.LABELS_KEY,
    vertex_executor.ENABLE_UCAIP_KEY, vertex_executor.UCAIP_REGION_KEY)


def worker_properties(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The task's exec properties, their custom_config without the launcher's keys."""
    custom_config = json_utils.loads(exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY])
    model_settings = {key: value for key, value in custom_config.items()
                      if key not in LAUNCHER_KEYS}
    return {**exec_properties,
            standard_component_specs.CUSTOM_CONFIG_KEY: json_utils.dumps(model_settings)}


class WorkerExecutor(trainer_executor.GenericExecutor):
    """TFX's Trainer executor (and so run_fn), as every worker of the custom job runs it."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        super().Do(input_dict, output_dict, worker_properties(exec_properties))


class Executor(vertex_executor.GenericExecutor):
    """The Trainer task's executor: launches the custom job, whose workers run
    WorkerExecutor, and waits for it."""

    def _GetExecutorClass(self):
        return WorkerExecutor
