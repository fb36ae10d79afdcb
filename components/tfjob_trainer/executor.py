"""A Trainer executor that trains on N workers through a TFJob and waits for it.

The Trainer task's pod only launches: it builds the command of TFX's own Trainer
executor with the task's inputs, outputs and properties (as TFX's Vertex training
launcher does), runs it as every worker of a TFJob, and returns when the job succeeds.
The workers write the Model and ModelRun artifacts themselves (only the chief keeps its
outputs), so the task's outputs are theirs.
"""
import json
import signal
import sys
import uuid
from typing import Any

from absl import logging
from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils, name_utils

from components.tfjob_trainer import tfjob

# custom_config's key for the launch settings (TFJobSettings' fields); the workers' own
# custom_config is the rest.
TFJOB_SETTINGS_KEY = "tfjob"


def worker_command(input_dict: dict[str, list[types.Artifact]],
                   output_dict: dict[str, list[types.Artifact]],
                   exec_properties: dict[str, Any]) -> list[str]:
    """The command that runs TFX's Trainer executor (and so run_fn) on these artifacts."""
    return [
        "python", "-m", "tfx.scripts.run_executor",
        "--executor_class_path", name_utils.get_full_name(trainer_executor.GenericExecutor),
        "--inputs", artifact_utils.jsonify_artifact_dict(input_dict),
        "--outputs", artifact_utils.jsonify_artifact_dict(output_dict),
        "--exec-properties", json.dumps(exec_properties, sort_keys=True),
    ]


class Executor(base_executor.BaseExecutor):
    """Runs the Trainer as the workers of a TFJob in the task's namespace."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        custom_config = json_utils.loads(
            exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY])
        settings = custom_config.pop(TFJOB_SETTINGS_KEY)
        worker_properties = {**exec_properties, standard_component_specs.CUSTOM_CONFIG_KEY:
                             json_utils.dumps(custom_config)}
        # KFP stops a task with SIGTERM: exit through the job's deletion, not around it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit("Trainer task stopped"))
        api_client, namespace = tfjob.kubernetes_api(), tfjob.current_namespace()
        pod = tfjob.launching_pod(api_client, namespace)
        if pod is None:
            logging.warning("Not in a KFP task's pod (no %s): the TFJob runs as the "
                            "namespace's default service account, owned by nothing.",
                            tfjob.POD_NAME_ENV)
        manifest = tfjob.tfjob_manifest(
            name=f"trainer-{uuid.uuid4().hex[:12]}",
            namespace=namespace,
            image=settings["image"],
            command=worker_command(input_dict, output_dict, worker_properties),
            workers=settings["workers"],
            resources=settings["resources"],
            labels={"app.kubernetes.io/part-of": settings["pipeline_name"],
                    "app.kubernetes.io/component": "trainer"},
            active_deadline_s=settings["active_deadline_s"],
            ttl_s=settings["ttl_s"],
            service_account=pod and pod["spec"]["service_account_name"],
            owner=pod and tfjob.owner_reference(pod))
        tfjob.run_tfjob(api_client, manifest, pending_deadline_s=settings["pending_deadline_s"])
