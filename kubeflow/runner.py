"""Kubeflow Pipelines runner: compiles the pipeline into a KFP v2 pipeline spec.

    make kubeflow-compile    # = python -m kubeflow.runner -> outputs/kubeflow/<pipeline>.yaml

The pipeline is `create_pipeline(config)`, as for the local runner; settings come from
PipelineConfig's defaults and the environment, with `per_run_parameters` on. Compiling
writes the Transform/Trainer user code as wheels to <pipeline_root>/_wheels, so the
pipeline root (OUTPUT_DIR) must be storage both this machine and the cluster reach.
"""
import dataclasses
import os

import yaml
from absl import logging
from tfx import v1 as tfx
from tfx.orchestration import data_types

from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline

SPEC_DIR = os.path.join("outputs", "kubeflow")


def spec_path(config: PipelineConfig, spec_dir: str = SPEC_DIR) -> str:
    """Where the compiled spec of this pipeline is written (YAML: what KFP uploads)."""
    return os.path.join(spec_dir, f"{config.pipeline_name}.yaml")


def compile_pipeline(config: PipelineConfig, spec_dir: str = SPEC_DIR) -> str:
    """Writes the KFP v2 pipeline spec, every component in config.container_image."""
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=config.container_image,
            # Schema 2.1 (typed parameters) is what KFP 2 writes and reads; TFX 1.16 also
            # fails to write YAML for runtime parameters under the default 2.0.
            use_pipeline_spec_2_1=True))
    pipeline = create_pipeline(dataclasses.replace(config, per_run_parameters=True))
    pipeline_spec = runner.run(pipeline, write_out=False)["pipelineSpec"]
    # TFX leaves the parameters' defaults out of the spec, and KFP then requires every
    # parameter on every run (a schedule included): write them in.
    defaults = {value.name: value.default for component in pipeline.components
                for value in component.exec_properties.values()
                if isinstance(value, data_types.RuntimeParameter)}
    for name, parameter in pipeline_spec["root"]["inputDefinitions"]["parameters"].items():
        parameter["defaultValue"] = defaults[name]
    path = spec_path(config, spec_dir)
    os.makedirs(spec_dir, exist_ok=True)
    with open(path, "w") as spec_file:
        yaml.safe_dump(pipeline_spec, spec_file, sort_keys=True)
    return path


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    print(f"Pipeline spec: {compile_pipeline(PipelineConfig.from_env())}")
