"""What a pipeline run did (its spans, blessing, metrics and push), and what its
evaluation was made of (eval examples, candidate model, training logs), from MLMD and the
Evaluator's files."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from metadata import evaluation_results
from metadata.store import (INPUT_EVENTS, OUTPUT_EVENTS, Context, Execution, MetadataStore,
                            artifacts_by_key, artifacts_of_type, open_store, pipeline_runs,
                            producer, property_value, run_of)


@dataclasses.dataclass(frozen=True)
class RunSummary:
    run_id: str
    spans: list[int]  # of the examples the run ingested or trained on (0: no spans)
    blessed: bool
    metrics: dict[str, float]  # the candidate's, overall, by TFMA metric name
    failed_thresholds: list[str]  # TFMA's message for each threshold not met
    pushed_model_dir: str | None  # None when nothing was pushed
    evaluation_uri: str
    # Runs newer than this one that did not complete, oldest first (latest_run_summary).
    skipped_run_ids: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class SpanIngestion:
    """A span one run ingested (its ExampleGen wrote, or reused from TFX's cache, the
    span's examples), and whether that run completed."""
    span: int
    run_id: str
    run_completed: bool


@dataclasses.dataclass(frozen=True)
class RunEvaluation:
    """A run's evaluation: what the Evaluator read and wrote, and the candidate model's
    training logs (what the run's report is made of)."""
    run_id: str
    evaluation_uri: str
    blessed: bool
    model_uri: str  # the candidate Model artifact (the SavedModel is in Format-Serving/)
    model_run_uri: str | None  # the Trainer's TensorBoard logs; None if not recorded
    span: int  # the eval examples' span (0 when the data is not in spans)
    # Runs newer than this one that did not complete, oldest first (the latest run asked).
    skipped_run_ids: tuple[str, ...] = ()


def latest_run_summary(metadata_path: str) -> RunSummary:
    """The blessing, eval metrics and push of the newest complete run in the MLMD store."""
    store = open_store(metadata_path)
    run, skipped = _newest_complete_run(store, metadata_path)
    return dataclasses.replace(summarize_run(store, run), skipped_run_ids=skipped)


def summarize_run(store: MetadataStore, run: Context) -> RunSummary:
    """Raises LookupError for a run that did not get as far as the Pusher."""
    def artifact_of(type_name: str):
        artifacts = artifacts_of_type(store, type_name, run)
        if not artifacts:
            raise LookupError(f"Run {run.name} has no {type_name}: did it finish?")
        return artifacts[-1]

    evaluation = artifact_of("ModelEvaluation")
    blessing = artifact_of("ModelBlessing")
    pushed_model = artifact_of("PushedModel")
    pushed = property_value(pushed_model, "pushed", default=0) == 1
    return RunSummary(
        run_id=run.name,
        spans=_spans_used(store, run),
        blessed=property_value(blessing, "blessed", default=0) == 1,
        metrics=evaluation_results.overall_metrics(evaluation.uri),
        failed_thresholds=evaluation_results.failed_thresholds(evaluation.uri),
        pushed_model_dir=property_value(pushed_model, "pushed_destination") if pushed else None,
        evaluation_uri=evaluation.uri,
    )


def span_ingestions(metadata_path: str) -> list[SpanIngestion]:
    """Every span each run ingested, oldest run first ([] before the first run). A span
    is trained once a run that ingested it completed: ExampleGen publishes its examples
    before the Trainer starts, so a run that failed or was killed later still ingested
    them."""
    if not Path(metadata_path).exists():
        return []
    store = open_store(metadata_path)  # a store locked or corrupt raises: it is not empty
    return [SpanIngestion(span=span, run_id=run.name, run_completed=run_completed(store, run))
            for run in pipeline_runs(store)
            for span in _spans_used(store, run, event_types=OUTPUT_EVENTS)]


def run_completed(store: MetadataStore, run: Context) -> bool:
    """Whether the run got to its end, blessed or not: its Pusher, the last component,
    published (it records "not pushed" for a model not blessed), and no component of the
    run failed or still runs."""
    return (bool(artifacts_of_type(store, "PushedModel", run))
            and all(execution.last_known_state in (Execution.COMPLETE, Execution.CACHED)
                    for execution in store.get_executions_by_context(run.id)))


def run_evaluation(metadata_path: str, run: str | None = None) -> RunEvaluation:
    """`run`: a pipeline run id, an Evaluator output path, or None for the newest complete
    run."""
    store = open_store(metadata_path)
    skipped = ()
    if run and Path(run).exists():
        evaluation = _evaluation_at(store, str(Path(run).absolute()))
        evaluator = producer(store, evaluation)
        run_id = run_of(store, evaluator).name
    else:
        if not run:
            newest, skipped = _newest_complete_run(store, metadata_path)
            run = newest.name
        run_id, evaluation = _evaluation_of_run(store, metadata_path, run)
        evaluator = producer(store, evaluation)
    inputs = artifacts_by_key(store, evaluator, INPUT_EVENTS)
    outputs = artifacts_by_key(store, evaluator)
    model = inputs["model"]
    model_run = artifacts_by_key(store, producer(store, model)).get("model_run")
    return RunEvaluation(
        run_id=run_id,
        evaluation_uri=evaluation.uri,
        blessed=property_value(outputs["blessing"], "blessed", default=0) == 1,
        model_uri=model.uri,
        model_run_uri=model_run.uri if model_run else None,
        span=int(property_value(inputs["examples"], "span", default=0)),
        skipped_run_ids=skipped,
    )


def _newest_complete_run(store: MetadataStore,
                         metadata_path: str) -> tuple[Context, tuple[str, ...]]:
    """The newest run that completed, and the ids of the newer ones that did not (failed,
    killed, or still running), oldest first: those have no evaluation, or no push."""
    runs = pipeline_runs(store)
    if not runs:
        raise LookupError(f"No pipeline run recorded in {metadata_path}.")
    for newest in range(len(runs) - 1, -1, -1):
        if run_completed(store, runs[newest]):
            return runs[newest], tuple(run.name for run in runs[newest + 1:])
    raise LookupError(f"No run recorded in {metadata_path} completed (runs "
                      f"{', '.join(run.name for run in runs)}).")


def _spans_used(store: MetadataStore, run: Context, event_types=None) -> list[int]:
    """Spans of the examples the run's components read or wrote (Transform reads the
    training window, which the run context does not list); with OUTPUT_EVENTS, wrote:
    the spans the run ingested."""
    executions = [execution.id for execution in store.get_executions_by_context(run.id)]
    artifact_ids = {event.artifact_id for event in store.get_events_by_execution_ids(executions)
                    if event_types is None or event.type in event_types}
    examples_ids = {artifact.id for artifact in artifacts_of_type(store, "Examples")}
    # Transform's outputs are Examples too, without a span.
    return sorted({property_value(artifact, "span")
                   for artifact in store.get_artifacts_by_id(list(artifact_ids & examples_ids))
                   if "span" in artifact.custom_properties})


def _evaluation_of_run(store: MetadataStore, metadata_path: str, run_id: str):
    runs = [context for context in pipeline_runs(store) if context.name == run_id]
    if not runs:
        raise LookupError(f"No pipeline run {run_id!r} in {metadata_path} (give a run id "
                          "as `make pipeline` prints it, or an Evaluator output path).")
    run = runs[-1]
    evaluations = artifacts_of_type(store, "ModelEvaluation", run)
    if not evaluations:
        raise LookupError(f"Run {run.name} has no model evaluation: did the Evaluator run?")
    return run.name, evaluations[0]


def _evaluation_at(store: MetadataStore, uri: str):
    matches = [artifact for artifact in artifacts_of_type(store, "ModelEvaluation")
               if artifact.uri == uri]
    if not matches:
        raise LookupError(f"{uri} is not an Evaluator output recorded in this pipeline's "
                          "metadata.")
    return matches[0]
