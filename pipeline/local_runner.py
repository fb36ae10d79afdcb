"""Local runner, for the TFX CLI:

    tfx pipeline create --engine=local --pipeline_path=pipeline/local_runner.py
    tfx run create --engine=local --pipeline_name=cats-dogs-resnet

Settings come from PipelineConfig's defaults and the environment (e.g. DATA_ROOT). The
run holds the pipeline root's lock (pipeline/run_lock.py): under `make pipeline` or
`make retrain` it inherits theirs; run by hand, it takes it. With BEAM_RUNNER=flink the
run starts a local Flink cluster for its Beam components, and stops it when it ends.
"""
import contextlib
import shutil
import sys
import time
from pathlib import Path

from absl import logging
from tfx import v1 as tfx

from metadata.store import open_store, pipeline_runs
from pipeline import flink, run_lock
from pipeline.config import PipelineConfig
from models.trainer import TRAINING_BACKUPS_DIR
from pipeline.definition import TRAINER_ID, create_pipeline


def remove_stale_training_backups(config: PipelineConfig) -> None:
    """After a successful run, every backup left is of a training with other inputs than
    this run's (its own was deleted when it completed): it will never be resumed."""
    shutil.rmtree(Path(config.pipeline_root, TRAINER_ID, TRAINING_BACKUPS_DIR), ignore_errors=True)


class LocalRunner(tfx.orchestration.LocalDagRunner):
    """TFX's local runner, with what the Beam runner needs running around the run: a
    local Flink cluster for beam_runner=flink (pipeline/flink.py).

    Started in run_with_ir(), which run() calls once it has compiled the pipeline, and
    which `tfx pipeline create` never reaches: the CLI's patched run() stops before."""

    def __init__(self, beam_runner: str):
        super().__init__()
        self._beam_runner = beam_runner

    def run_with_ir(self, pipeline, run_options=None, **kwargs):
        beam_services = (flink.local_flink_cluster() if self._beam_runner == "flink"
                         else contextlib.nullcontext())
        with beam_services:
            return super().run_with_ir(pipeline, run_options=run_options, **kwargs)


def run() -> None:
    config = PipelineConfig.from_env()
    config.check_data_root_exists()
    try:
        run_lock.hold(config, holder="the local runner")
    except run_lock.Locked as error:
        print(error, file=sys.stderr)
        sys.exit(run_lock.EXIT_LOCKED)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        config.metadata_path)
    started = time.time()
    LocalRunner(config.beam_runner).run(create_pipeline(config, metadata))
    # `tfx pipeline create` executes this file too, with run() made a no-op: clean up only
    # after a run that happened (a failed one raises).
    if ran_since(config, started):
        remove_stale_training_backups(config)


def ran_since(config: PipelineConfig, started: float) -> bool:
    try:
        runs = pipeline_runs(open_store(config.metadata_path))
    except LookupError:
        return False
    return bool(runs) and runs[-1].create_time_since_epoch >= int(started * 1000)


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    run()
