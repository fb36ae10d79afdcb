"""`make retrain`'s choice (pipeline/retrain.py): a span counts as trained once a run that
ingested it completed, and a span folder waits for its marker. The runs are recorded in
MLMD by hand, as TFX records them; the pipeline run is a stand-in (test_retraining_e2e.py
runs real cycles)."""
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2

from data.folders import SPAN_COMPLETE_MARKER
from pipeline import registration, retrain
from pipeline.config import PipelineConfig
from tests.helpers import RecordedRun

PIPELINE = "retrain-test"
COMPLETED_RUN, FAILED_RUN = "2026-11-27T03:00:00.000001", "2026-11-28T03:00:00.000001"


@pytest.fixture
def config(tmp_path, monkeypatch):
    """Spans in tmp_path/data; a cycle that decides to run registers nothing and starts
    `false` for the TFX CLI, so that run_cycle returns 1 once it has started the run."""
    (tmp_path / "data").mkdir()
    config = PipelineConfig(pipeline_name=PIPELINE, output_dir=str(tmp_path / "outputs"),
                            data_root=str(tmp_path / "data"), spans=True)
    Path(config.metadata_path).parent.mkdir(parents=True)
    monkeypatch.setattr(registration, "register", lambda config: None)
    monkeypatch.setattr(registration, "TFX_CLI", "false")
    return config


def add_span(config: PipelineConfig, span: int, complete: bool = True) -> None:
    span_root = Path(config.data_root, f"span-{span}")
    (span_root / "training_set").mkdir(parents=True)
    if complete:
        (span_root / SPAN_COMPLETE_MARKER).touch()


def record_run(config: PipelineConfig, run_id: str, span: int, completed: bool) -> None:
    """A run that ingested the span, then completed (not blessed) or failed in the Trainer."""
    run = RecordedRun(config.metadata_path, PIPELINE, run_id)
    examples = run.artifact("Examples", f"/root/ImageExampleGen/examples/{span}", span=span)
    run.execution("ImageExampleGen", outputs={"examples": examples})
    if completed:
        pushed = run.artifact("PushedModel", f"/root/Pusher/pushed_model/{span}", pushed=0)
        run.execution("Pusher", outputs={"pushed_model": pushed})
    else:
        run.execution("Trainer", inputs={"examples": examples},
                      state=metadata_store_pb2.Execution.FAILED)


def test_a_span_that_a_failed_run_ingested_is_trained_again(config, capsys):
    add_span(config, 1)
    add_span(config, 2)
    record_run(config, COMPLETED_RUN, span=1, completed=True)
    record_run(config, FAILED_RUN, span=2, completed=False)
    assert retrain.run_cycle(config) == 1  # the stand-in run's status: it was started
    assert capsys.readouterr().out.splitlines() == [
        f"span-2 was ingested by run {FAILED_RUN}, which did not complete (it failed or was "
        "stopped): training it again.",
        "New span: span-2 (last trained: span-1). Running the pipeline."]

    record_run(config, "2026-11-29T03:00:00.000001", span=2, completed=True)
    assert retrain.run_cycle(config) == 0
    assert capsys.readouterr().out == ("No new span: span-2 was trained by run "
                                       "2026-11-29T03:00:00.000001, which completed. "
                                       "Nothing to do.\n")


def test_a_span_folder_waits_for_its_marker(config, capsys):
    add_span(config, 1, complete=False)
    assert retrain.run_cycle(config) == 0
    marker = Path(config.data_root, "span-1", SPAN_COMPLETE_MARKER)
    assert capsys.readouterr().out.splitlines() == [
        f"Waiting for span-1: no {marker} yet (a drop's writer leaves it last, once every "
        "file is in).",
        "No complete span yet. Nothing to do."]

    marker.touch()
    add_span(config, 2, complete=False)
    assert retrain.run_cycle(config) == 1  # span-1 now, while span-2 arrives
    assert capsys.readouterr().out.splitlines()[1:] == [
        "New span: span-1 (last trained: none). Running the pipeline."]
