"""Kubeflow Pipelines runner: compiles the pipeline into a KFP v2 pipeline spec.

    make kubeflow-compile    # = python -m kubeflow.runner -> <kubeflow_spec_dir>/<pipeline>.yaml

The pipeline is `create_pipeline(config, cluster_plan(...))`, as for the local runner but
with a cluster's plan: "kubeflow" (open-source KFP 2.x) or "vertex" (Vertex AI Pipelines). Compiling needs no access to the cluster's storage: the image holds the code
(kubeflow/image.py), and the spec names only the image and the pipeline's storage: gs://
paths, or an object store's, with the settings and the Secret each pod reaches it with.
"""
import dataclasses
import json
import os
from typing import Any, Optional

import yaml
from absl import logging
from google.protobuf import json_format
from tfx import v1 as tfx
from tfx.orchestration import data_types
from tfx.orchestration.kubeflow.v2.pipeline_builder import DEFAULT_IMAGE_PATH_KEY

from kubeflow import object_store
from kubeflow.entrypoint import OUTPUTS_SPEC_FLAG
from kubeflow.image import image_reference
from kubeflow.multi_worker import trainer_launcher
from kubeflow.submit import spec_path
from pipeline.config import PipelineConfig
from pipeline.definition import (BASELINE_ID, DATA_FINGERPRINT_ID, TRAINER_ID,
                                 create_pipeline)
from pipeline.plan import PUSHED_BASELINE, RESOLVED_BASELINE, PipelinePlan

# Tasks that read the world outside their inputs: KFP's cache, keyed by a task's inputs,
# image and arguments, would serve a weekly run last week's data. The others read the
# data's fingerprint as a parameter (components/data_fingerprint/): on unchanged data
# a run is served from the cache after this task.
UNCACHED_TASKS = (DATA_FINGERPRINT_ID,)
# TFX's name for the Vertex resolver task that finds the last blessing
# (tfx/orchestration/kubeflow/v2/step_builder.py, _MODEL_BLESSING_RESOLVER_SUFFIX).
BLESSING_RESOLVER_TASK = BASELINE_ID + "-model-blessing-resolver"
TFX_ENTRYPOINT = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
OUR_ENTRYPOINT = ["python", "-m", "kubeflow.entrypoint"]
# What each backend can run: open-source KFP compiles a spec into an Argo workflow of
# container and importer tasks only; Vertex also runs TFX's resolver tasks.
EXECUTOR_KINDS = {"kubeflow": {"container", "importer"},
                  "vertex": {"container", "importer", "resolver"}}


def cluster_plan(config: PipelineConfig, trainer_image: str) -> PipelinePlan:
    """A KFP target's plan: the image holds the code; each run may set data_root and
    train_args (KFP UI, `--param`), the config's values being their defaults; the data's
    fingerprint keys KFP's cache. The baseline: on open-source KFP, which runs no resolver
    tasks, the newest pushed model; on Vertex TFX's resolver, which compile_pipeline then
    scopes to this pipeline (scope_baseline_to_pipeline)."""
    return PipelinePlan(
        beam_pipeline_args=config.beam_pipeline_args(config.kfp_target),
        baseline=PUSHED_BASELINE if config.kfp_target == "kubeflow" else RESOLVED_BASELINE,
        input_base=tfx.dsl.experimental.RuntimeParameter(
            name="data_root", ptype=str, default=config.input_base),
        # A proto cannot hold a parameter, so the whole TrainArgs is one, as its JSON. No
        # step count: the Trainer trains config.train_epochs over the data it is given.
        train_args=tfx.dsl.experimental.RuntimeParameter(
            name="train_args", ptype=str,
            default=json_format.MessageToJson(tfx.proto.TrainArgs(), indent=None)),
        code_in_image=True,
        fingerprint_data=True,
        trainer_launcher=trainer_launcher(config, trainer_image))


def cluster_object_store(config: PipelineConfig) -> Optional[object_store.ObjectStore]:
    """The object store of data_root and output_dir (None: neither is on one), as KFP's
    launcher reaches it: every task's TensorFlow and Beam reach it the same way. One, as
    their S3 clients take one endpoint and one pair of credentials per process."""
    stores = {name: object_store.launcher_store(getattr(config, name),
                                                config.kfp_launcher_providers,
                                                config.kfp_object_store_endpoint)
              for name in ("data_root", "output_dir")}
    distinct = set(stores.values()) - {None}
    if len(distinct) > 1:
        raise ValueError(
            f"Invalid settings data_root={config.data_root!r} and output_dir="
            f"{config.output_dir!r}: KFP's launcher reaches them as two object stores "
            f"({stores['data_root']} and {stores['output_dir']}), and a task's S3 clients "
            "reach one: expected both on the same store (or one on gs://).")
    return distinct.pop() if distinct else None


def compile_pipeline(config: PipelineConfig, spec_dir: str,
                     allow_local_paths: bool = False) -> str:
    """Writes the KFP v2 pipeline spec for config.kfp_target into spec_dir; returns its path.

    `allow_local_paths` is for running the spec on this machine (kubeflow/contract_run.py).
    """
    config.check_runs_on(config.kfp_target, allow_local_paths)
    store = cluster_object_store(config)
    image = image_reference(config.container_image)
    # GPUs need TensorFlow's CUDA libraries, which only the GPU variant of the image holds:
    # the Trainer's task and its workers run it, every other task the CPU image.
    trainer_image = (image_reference(config.container_image, variant="gpu")
                     if config.trainer_gpu_count else image)
    # The image as tagged, in the config: Dataflow's workers run it (beam_pipeline_args).
    # The paths as TFX's code opens them (s3:// for KFP's minio://): TensorFlow and Beam
    # alone read the parameters and properties they become (data_root, serving models).
    config = dataclasses.replace(config, container_image=image,
                                 data_root=object_store.tensorflow_uri(config.data_root),
                                 output_dir=object_store.tensorflow_uri(config.output_dir))
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image={DEFAULT_IMAGE_PATH_KEY: image, TRAINER_ID: trainer_image},
            # Schema 2.1 (typed parameters) is what KFP 2 writes and reads; TFX 1.16 also
            # fails to write YAML for runtime parameters under the default 2.0.
            use_pipeline_spec_2_1=True))
    plan = cluster_plan(config, trainer_image)
    pipeline = create_pipeline(config, plan)
    pipeline_spec = runner.run(pipeline, write_out=False)["pipelineSpec"]
    # TFX leaves the parameters' defaults out of the spec, and KFP then requires every
    # parameter on every run (a schedule included): write them in.
    defaults = {value.name: value.default for component in pipeline.components
                for value in component.exec_properties.values()
                if isinstance(value, data_types.RuntimeParameter)}
    for name, parameter in pipeline_spec["root"]["inputDefinitions"]["parameters"].items():
        parameter["defaultValue"] = defaults[name]
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    name_output_parameters_producers(tasks)
    for name in UNCACHED_TASKS:
        tasks[name]["cachingOptions"] = {"enableCache": False}
    if config.kfp_target == "vertex":
        scope_baseline_to_pipeline(pipeline_spec, config.pipeline_root)
    # Set here, not through TFX's platform_config, which its compiler drops for ExampleGen.
    for name, task in tasks.items():
        executor = executor_of(pipeline_spec, task)
        if "container" in executor and config.kfp_target == "kubeflow":
            # TFX's ExampleGen driver hook (lifecycle.preCacheCheck), which Vertex runs
            # and open-source KFP's driver never reads: not in a spec for the latter.
            executor["container"].pop("lifecycle", None)
        if "container" in executor:
            # A Trainer that launches workers only waits for them: a small task's requests.
            executor["container"]["resources"] = (
                task_resources(config.kfp_target, config.trainer_cpu, config.trainer_memory_gib,
                               config.trainer_gpu_count, config.trainer_accelerator)
                if name == TRAINER_ID and not plan.trainer_launcher
                else task_resources(config.kfp_target, config.task_cpu, config.task_memory_gib))
            component = pipeline_spec["components"][task["componentRef"]["name"]]
            run_through_our_entrypoint(executor["container"],
                                       component.get("outputDefinitions", {}))
            if store:
                executor["container"]["env"] = [
                    {"name": variable, "value": value} for variable, value
                    in sorted(object_store.client_environment(store).items())]
    kinds = executor_kinds(pipeline_spec)
    unsupported = kinds - EXECUTOR_KINDS[config.kfp_target]
    if unsupported:
        raise ValueError(f"The spec holds {sorted(unsupported)} executors, which "
                         f"kfp_target={config.kfp_target!r} cannot run.")
    platform_spec = kubernetes_platform_spec(pipeline_spec, store)
    path = spec_path(config, spec_dir)
    os.makedirs(spec_dir, exist_ok=True)
    with open(path, "w") as spec_file:
        yaml.safe_dump_all([pipeline_spec, *([platform_spec] if platform_spec else [])],
                           spec_file, sort_keys=True)
    return path


def name_output_parameters_producers(tasks: dict) -> None:
    """A task output parameter's producer as the task is named: TFX 1.16's compiler
    names it `<component id>_task` (step_builder.py, StepBuilder.build), a task no spec
    holds, and KFP fails the consumer's driver on it."""
    for task in tasks.values():
        for parameter in task.get("inputs", {}).get("parameters", {}).values():
            producer = parameter.get("taskOutputParameter")
            if producer and producer["producerTask"] not in tasks:
                producer["producerTask"] = producer["producerTask"].removesuffix("_task")


def scope_baseline_to_pipeline(pipeline_spec: dict, pipeline_root: str) -> None:
    """Vertex's baseline: the last blessing of this pipeline, not of any pipeline in the
    project's metadata store.

    TFX's resolver query (step_builder.py, _build_resolver_for_latest_model_blessing)
    filters on type, state and `blessed` only, over the whole store that a project's
    pipelines share. Every artifact of a Vertex run lies under the run's pipeline root
    (`<root>/<project number>/<job>/<task>_<id>/<output>`), and ours is the pipeline's own,
    `<output_dir>/pipeline_root/<pipeline name>`: the spec's default root, and the query's
    `uri` prefix (Vertex ML Metadata's filters take `*` in a string: AIP-160, as its
    ListArtifacts documents). A run submitted with another root finds no baseline and is
    judged on min_accuracy alone, never against another pipeline's model.
    """
    pipeline_spec["defaultPipelineRoot"] = pipeline_root
    query = executor_of(pipeline_spec, pipeline_spec["root"]["dag"]["tasks"][
        BLESSING_RESOLVER_TASK])["resolver"]["outputArtifactQueries"]["model_blessing"]
    query["filter"] += f' AND uri="{pipeline_root.rstrip("/")}/*"'


def kubernetes_platform_spec(pipeline_spec: dict,
                             store: Optional[object_store.ObjectStore]) -> Optional[dict]:
    """The spec file's second YAML document, KFP's PlatformSpec (the API server and kfp's
    client take the first document as the pipeline, a next one as this): the store's
    credentials from its Secret into every container task's pod (secretAsEnv). None when
    the store has no Secret, or there is no store."""
    if not store or not object_store.secret_as_env(store):
        return None
    # A list of its own for each: a shared one would be written as YAML anchors.
    executors = {label: {"secretAsEnv": object_store.secret_as_env(store)}
                 for label, executor in pipeline_spec["deploymentSpec"]["executors"].items()
                 if "container" in executor}
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


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


def run_through_our_entrypoint(container: dict, output_definitions: dict) -> None:
    """TFX's container command made kubeflow/entrypoint.py's, which hands TFX's own
    entrypoint what it expects from what KFP's driver sends; it gets the component's
    outputs from the spec, as TFX's command already carries its inputs."""
    if container["command"] != TFX_ENTRYPOINT:
        raise ValueError(f"Unexpected container command {container['command']}: TFX's "
                         f"V2 compiler writes {TFX_ENTRYPOINT}.")
    container["command"] = OUR_ENTRYPOINT
    after_inputs = container["args"].index("--json_serialized_inputs_spec_args") + 2
    container["args"][after_inputs:after_inputs] = [
        OUTPUTS_SPEC_FLAG, json.dumps(output_definitions, sort_keys=True)]


def executor_of(pipeline_spec: dict, task: dict) -> dict:
    component = pipeline_spec["components"][task["componentRef"]["name"]]
    return pipeline_spec["deploymentSpec"]["executors"][component["executorLabel"]]


def executor_kinds(pipeline_spec: dict) -> set[str]:
    """The kinds of executor a spec's tasks run: container, importer, resolver..."""
    return {kind for executor in pipeline_spec["deploymentSpec"]["executors"].values()
            for kind in executor}


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    settings = PipelineConfig.from_env()
    print(f"Pipeline spec: {compile_pipeline(settings, settings.kubeflow_spec_dir)}")
