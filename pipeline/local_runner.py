"""Local runner, for the TFX CLI:

    tfx pipeline create --engine=local --pipeline_path=pipeline/local_runner.py
    tfx run create --engine=local --pipeline_name=cats-dogs-resnet

Settings come from PipelineConfig's defaults and the environment (e.g. DATA_ROOT). The
run holds the pipeline root's lock (pipeline/run_lock.py): under `make pipeline` or
`make retrain` it inherits theirs; run by hand, it takes it. With BEAM_RUNNER=flink the
run starts a local Flink cluster for its Beam components, and stops it when it ends.
"""
import argparse
import contextlib
import logging as std_logging
import os
import shutil
import sys
import tempfile
import time

from absl import logging
from tfx import v1 as tfx

from metadata.stage_results import stage_result
from metadata.store import open_store, pipeline_runs
from models import console
from models.training_state import backups_root
from pipeline import flink, run_lock
from pipeline.config import LOCAL, PipelineConfig
from pipeline.definition import TRAINER_ID, create_pipeline
from pipeline.plan import local_plan


# The run's temporary folder, in the pipeline root beside TFX's own _wheels.
RUN_TEMP_DIR = "_tmp"


@contextlib.contextmanager
def run_temp_dir(config: PipelineConfig):
    """Every temporary file of the run goes into one folder, removed when the run ends.

    TFX packages the user code of Transform and Trainer into wheels, and installs them,
    in tempfile.mkdtemp() folders it never removes (tfx/components/util/udf_utils.py):
    eight of them in /tmp per run. The folder is this process's tempfile directory and
    the TMPDIR of every process it starts (Beam's workers, Flink's). It is in the
    pipeline root, where one run at a time holds the lock: what a killed run left there
    is removed first. A pipeline root on an object store gets one in the system's.
    """
    if "://" in config.pipeline_root:
        folder = tempfile.mkdtemp(prefix=f"{config.pipeline_name}-")
    else:
        folder = os.path.join(config.pipeline_root, RUN_TEMP_DIR)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    previous = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = folder
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        tempfile.tempdir = previous[1]
        if previous[0] is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = previous[0]


def remove_stale_training_backups(config: PipelineConfig) -> None:
    """After a successful run, every backup left is of a training with other inputs than
    this run's (its own was deleted when it completed): it will never be resumed."""
    shutil.rmtree(backups_root(os.path.join(config.pipeline_root, TRAINER_ID)), ignore_errors=True)


class StageLines(std_logging.Handler):
    """Shows a console line as each component ends: its time and what it did.

    It reads the two lines TFX's local runner logs around each component ("Component %s
    is running." / "is finished.", tfx/orchestration/local/local_dag_runner.py,
    LocalDagRunner.run_with_ir), and the component's outputs from MLMD.
    """

    def __init__(self, config: PipelineConfig):
        super().__init__()
        self.config = config
        self.started: dict[str, float] = {}

    def emit(self, record: std_logging.LogRecord) -> None:
        if record.msg == "Component %s is running.":
            self.started[record.args[0]] = time.monotonic()
        elif record.msg == "Component %s is finished.":
            component = record.args[0]
            seconds = time.monotonic() - self.started.pop(component, time.monotonic())
            console.show(f"  {component:<30} {console.duration(seconds):>10}  "
                         f"{self.result(component)}")

    def result(self, component: str) -> str:
        try:
            return stage_result(self.config.metadata_path, self.config.pipeline_name, component)
        except Exception as error:  # a line the console lacks must never fail the run
            logging.warning("No console line for %s: %r", component, error)
            return ""


class LocalRunner(tfx.orchestration.LocalDagRunner):
    """TFX's local runner, with what the Beam runner needs running around the run: a
    local Flink cluster for beam_runner=flink (pipeline/flink.py).

    Started in run_with_ir(), which run() calls once it has compiled the pipeline, and
    which `tfx pipeline create` never reaches: the CLI's patched run() stops before."""

    def __init__(self, config: PipelineConfig):
        super().__init__()
        self._config = config

    def run_with_ir(self, pipeline, run_options=None, **kwargs):
        beam_services = (flink.local_flink_cluster(self._config.flink_dir)
                         if self._config.beam_runner == "flink" else contextlib.nullcontext())
        with beam_services:
            return super().run_with_ir(pipeline, run_options=run_options, **kwargs)


def run() -> None:
    config = PipelineConfig.from_env()
    config.check_runs_on(LOCAL)
    config.check_data_root_exists()
    try:
        run_lock.hold(config, holder="the local runner")
    except run_lock.Locked as error:
        print(error, file=sys.stderr)
        sys.exit(run_lock.EXIT_LOCKED)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        config.metadata_path)
    started = time.time()
    stage_lines = StageLines(config)
    std_logging.getLogger("absl").addHandler(stage_lines)
    with run_temp_dir(config):
        LocalRunner(config).run(create_pipeline(config, local_plan(config, metadata)))
    std_logging.getLogger("absl").removeHandler(stage_lines)
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
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    # The log's lines with their time (Python's default format has none).
    std_logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            force=True)
    logging.set_verbosity(logging.INFO)
    run()
