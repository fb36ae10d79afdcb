"""Kubeflow Pipelines runner: compiles the pipeline into a KFP v2 pipeline spec.

    make kubeflow-compile    # = python -m kubeflow.runner -> outputs/kubeflow/<pipeline>.yaml

The pipeline is `create_pipeline(config, target=config.kfp_target)`, as for the local
runner but for a cluster: "kubeflow" (open-source KFP 2.x) or "vertex" (Vertex AI
Pipelines). Compiling needs no access to the cluster's storage: the image holds the code
(kubeflow/image.py), and the spec names only the image and the pipeline's gs:// paths.
"""
import dataclasses
import os
from typing import Any

import yaml
from absl import logging
from tfx import v1 as tfx
from tfx.orchestration import data_types

from kubeflow.image import image_reference
from kubeflow.multi_worker import trainer_launcher
from kubeflow.submit import SPEC_DIR, spec_path
from pipeline.config import CLUSTER_STORAGE_SCHEME, PipelineConfig
from pipeline.definition import PUSHED_BASELINE_ID, TRAINER_ID, create_pipeline

# Tasks that read the world outside their inputs: KFP's cache, keyed by a task's inputs,
# image and arguments, would serve a weekly run last week's data or baseline.
UNCACHED_TASKS = ("ImageExampleGen", PUSHED_BASELINE_ID)
# What each backend can run: open-source KFP compiles a spec into an Argo workflow of
# container and importer tasks only; Vertex also runs TFX's resolver tasks.
EXECUTOR_KINDS = {"kubeflow": {"container", "importer"},
                  "vertex": {"container", "importer", "resolver"}}


def check_compilable(config: PipelineConfig, allow_local_paths: bool = False) -> None:
    """Refuses, before any work, what the configured backend could not run."""
    if config.spans:
        raise ValueError(
            f"Invalid setting spans=true for kfp_target={config.kfp_target!r}: retraining "
            "on spans trains on a window of spans chosen by TFX's SpanRangeStrategy "
            "resolver, which TFX's Kubeflow V2 compiler does not support (only the latest "
            "and latest-blessed strategies), and open-source Kubeflow Pipelines runs no "
            "resolver tasks at all (\"resolver executors not implemented\"). Retrain on "
            "spans with `make retrain` on the local engine; on a cluster, a scheduled run "
            "ingests whatever data_root holds when it starts.")
    if allow_local_paths:
        return
    for name, path in (("data_root", config.data_root), ("output_dir", config.output_dir)):
        if not path.startswith(CLUSTER_STORAGE_SCHEME):
            raise ValueError(
                f"Invalid setting {name}={path!r} for kfp_target={config.kfp_target!r}: "
                f"expected a {CLUSTER_STORAGE_SCHEME} URI. A local path exists only on "
                "this machine, not in the cluster's pods; the pipeline root and the "
                f"serving models live under output_dir. (TFX writes artifacts through "
                "TensorFlow's filesystems: this image has gs://, not s3:// or minio://.)")


def compile_pipeline(config: PipelineConfig, spec_dir: str = SPEC_DIR,
                     allow_local_paths: bool = False) -> str:
    """Writes the KFP v2 pipeline spec for config.kfp_target; returns its path.

    `allow_local_paths` is for running the spec on this machine (kubeflow/contract_run.py).
    """
    check_compilable(config, allow_local_paths)
    image = image_reference(config.container_image)
    # The image as tagged, in the config: Dataflow's workers run it (beam_pipeline_args).
    config = dataclasses.replace(config, container_image=image)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image,
            # Schema 2.1 (typed parameters) is what KFP 2 writes and reads; TFX 1.16 also
            # fails to write YAML for runtime parameters under the default 2.0.
            use_pipeline_spec_2_1=True))
    launcher = trainer_launcher(config, image)
    pipeline = create_pipeline(config, target=config.kfp_target, trainer_launcher=launcher)
    pipeline_spec = runner.run(pipeline, write_out=False)["pipelineSpec"]
    # TFX leaves the parameters' defaults out of the spec, and KFP then requires every
    # parameter on every run (a schedule included): write them in.
    defaults = {value.name: value.default for component in pipeline.components
                for value in component.exec_properties.values()
                if isinstance(value, data_types.RuntimeParameter)}
    for name, parameter in pipeline_spec["root"]["inputDefinitions"]["parameters"].items():
        parameter["defaultValue"] = defaults[name]
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    for name in UNCACHED_TASKS:
        if name in tasks:
            tasks[name]["cachingOptions"] = {"enableCache": False}
    # Set here, not through TFX's platform_config, which its compiler drops for ExampleGen.
    for name, task in tasks.items():
        executor = executor_of(pipeline_spec, task)
        if "container" in executor:
            # A Trainer that launches workers only waits for them: a small task's requests.
            executor["container"]["resources"] = (
                task_resources(config.kfp_target, config.trainer_cpu, config.trainer_memory_gib,
                               config.trainer_gpu_count, config.trainer_accelerator)
                if name == TRAINER_ID and not launcher
                else task_resources(config.kfp_target, config.task_cpu, config.task_memory_gib))
    kinds = executor_kinds(pipeline_spec)
    unsupported = kinds - EXECUTOR_KINDS[config.kfp_target]
    if unsupported:
        raise ValueError(f"The spec holds {sorted(unsupported)} executors, which "
                         f"kfp_target={config.kfp_target!r} cannot run.")
    path = spec_path(config, spec_dir)
    os.makedirs(spec_dir, exist_ok=True)
    with open(path, "w") as spec_file:
        yaml.safe_dump(pipeline_spec, spec_file, sort_keys=True)
    return path


def task_resources(target: str, cpu: float, memory_gib: float, gpu_count: int = 0,
                   accelerator: str = "") -> dict[str, Any]:
    """A task's requests, in the spec fields its backend reads."""
    if target == "kubeflow":
        # KFP's driver turns the resource* strings (Kubernetes quantities) into the pod's
        # requests and limits. No CPU limit: throttling only slows TensorFlow and Beam.
        # Memory limit = request: a pod using more is killed by its own limit, naming
        # it, rather than evicted under node pressure.
        resources = {"resourceCpuRequest": f"{cpu:g}",
                     "resourceMemoryRequest": f"{memory_gib:g}Gi",
                     "resourceMemoryLimit": f"{memory_gib:g}Gi"}
    else:
        # Vertex picks a machine with at least these limits (memory in GB).
        resources = {"cpuLimit": cpu, "memoryLimit": round(memory_gib * 2**30 / 1e9, 3),
                     "resourceCpuLimit": f"{cpu:g}", "resourceMemoryLimit": f"{memory_gib:g}Gi"}
    if gpu_count:
        resources["accelerator"] = {"type": accelerator, "count": str(gpu_count),
                                    "resourceType": accelerator,
                                    "resourceCount": str(gpu_count)}
    return resources


def executor_of(pipeline_spec: dict, task: dict) -> dict:
    component = pipeline_spec["components"][task["componentRef"]["name"]]
    return pipeline_spec["deploymentSpec"]["executors"][component["executorLabel"]]


def executor_kinds(pipeline_spec: dict) -> set[str]:
    """The kinds of executor a spec's tasks run: container, importer, resolver..."""
    return {kind for executor in pipeline_spec["deploymentSpec"]["executors"].values()
            for kind in executor}


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    print(f"Pipeline spec: {compile_pipeline(PipelineConfig.from_env())}")
