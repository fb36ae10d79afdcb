"""What a runner decides for its backend, in one object: `create_pipeline(config, plan)`
then wires the same components for every runner.

As in TFX's templates, where the runners hand `beam_pipeline_args` and the Trainer's
launch settings to one `create_pipeline`: the local runner's plan is `local_plan`, a
cluster's is built by kubeflow/runner.py (`cluster_plan`). Each runner first checks that
its backend can run the config (`PipelineConfig.check_runs_on`).
"""
import dataclasses
from typing import Any, Optional, Union

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration import data_types

from pipeline.config import LOCAL, PipelineConfig

# Where the Evaluator's baseline, the last blessed model, comes from: TFX's resolver over
# the metadata store (local, Vertex), or the newest model pushed to serving_model_dir
# (components/pushed_baseline.py: open-source KFP runs no resolver tasks).
RESOLVED_BASELINE = "resolved"
PUSHED_BASELINE = "pushed"


@dataclasses.dataclass(frozen=True)
class TrainerLauncher:
    """A Trainer executor that launches the training on other machines (e.g. N workers),
    and its own custom_config keys beside the model's, which it takes out before the
    workers' run_fn reads custom_config."""

    executor_class: type
    custom_config: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class PipelinePlan:
    """How one runner runs the pipeline: what differs between local, Kubeflow and Vertex."""

    beam_pipeline_args: list[str]
    baseline: str  # RESOLVED_BASELINE or PUSHED_BASELINE
    # The data folder and the Trainer's TrainArgs: values, or run parameters that each run
    # on a cluster may set (KFP UI, --param), the config's values being their defaults.
    input_base: Union[str, data_types.RuntimeParameter]
    train_args: Union[tfx.proto.TrainArgs, data_types.RuntimeParameter]
    # True: the image holds our code (its tag is the code's fingerprint), Transform and
    # Trainer name their functions, and compiling writes nothing to the pipeline root.
    # False: TFX packages models/ as user code, so a run uses the code as it is when it
    # starts, and reruns what a change concerns.
    code_in_image: bool = False
    # A task that fingerprints the data first, for a cache that keys tasks by their
    # parameters, not by the files they read (components/data_fingerprint/).
    fingerprint_data: bool = False
    # None: the Trainer trains in its own process.
    trainer_launcher: Optional[TrainerLauncher] = None
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None


def local_plan(config: PipelineConfig,
               metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
               ) -> PipelinePlan:
    """The local engine's (LocalDagRunner, the TFX CLI): everything on this machine."""
    return PipelinePlan(
        beam_pipeline_args=config.beam_pipeline_args(LOCAL),
        baseline=RESOLVED_BASELINE,
        input_base=config.input_base,
        # No step count: the Trainer trains config.train_epochs over the data it is given.
        train_args=tfx.proto.TrainArgs(),
        metadata_connection_config=metadata_connection_config)
