"""How the Trainer's task launches `trainer_workers` workers on each KFP target.

- kubeflow: a TFJob of the Kubeflow Training Operator in the task's namespace
  (components/tfjob_trainer), one pod per worker with the Trainer's requests.
- vertex: a Vertex AI custom job, through TFX's own training launcher
  (tfx.extensions.google_cloud_ai_platform, in components/vertex_trainer.py): a chief pool
  of one machine and a worker pool of the others.

Every worker runs TFX's Trainer executor, and so `run_fn`, in the Trainer's image (the GPU
variant when it has GPUs), under MultiWorkerMirroredStrategy, on the model's custom_config:
each launcher takes its own keys out first. The task itself only waits, with the small
tasks' requests.
"""
from typing import Optional

from tfx.extensions.google_cloud_ai_platform import constants as vertex_constants
from tfx.extensions.google_cloud_ai_platform.trainer import executor as tfx_vertex_trainer

from components import vertex_trainer
from components.tfjob_trainer import executor as tfjob_trainer
from pipeline.config import PipelineConfig
from pipeline.plan import TrainerLauncher


def trainer_launcher(config: PipelineConfig, image: str) -> Optional[TrainerLauncher]:
    """None for one worker: the Trainer's task trains itself."""
    if config.trainer_workers == 1:
        return None
    if config.kfp_target == "kubeflow":
        return TrainerLauncher(tfjob_trainer.Executor, {tfjob_trainer.TFJOB_SETTINGS_KEY: {
            "workers": config.trainer_workers,
            "image": image,
            "resources": worker_resources(config),
            "pipeline_name": config.pipeline_name,
            "active_deadline_s": config.tfjob_active_deadline_s,
            "pending_deadline_s": config.tfjob_pending_deadline_s,
            "ttl_s": config.tfjob_ttl_s,
        }})
    machine_spec = {"machine_type": config.vertex_machine_type}
    if config.trainer_gpu_count:
        machine_spec |= {"accelerator_type": config.trainer_accelerator,
                         "accelerator_count": config.trainer_gpu_count}

    def pool(replicas: int) -> dict:
        return {"machine_spec": machine_spec, "replica_count": replicas,
                "container_spec": {"image_uri": image}}

    return TrainerLauncher(vertex_trainer.Executor, {
        vertex_constants.ENABLE_VERTEX_KEY: True,
        vertex_constants.VERTEX_REGION_KEY: config.vertex_region,
        tfx_vertex_trainer.TRAINING_ARGS_KEY: {
            "project": config.vertex_project,
            # Vertex names the first pool's machine "chief" in TF_CONFIG, the rest "worker".
            "job_spec": {"worker_pool_specs": [pool(1), pool(config.trainer_workers - 1)]},
        },
    })


def worker_resources(config: PipelineConfig) -> dict[str, dict[str, str]]:
    """A TFJob worker's Kubernetes requests and limits: the Trainer's."""
    memory = f"{config.trainer_memory_gib:g}Gi"
    limits = {"memory": memory}
    if config.trainer_gpu_count:
        limits[config.trainer_accelerator] = str(config.trainer_gpu_count)
    return {"requests": {"cpu": f"{config.trainer_cpu:g}", "memory": memory}, "limits": limits}
