"""The artifacts a run's report is made of, found in MLMD by following the Evaluator's
execution: its inputs (eval examples, candidate model), its blessing, and the Trainer
execution behind the model (its TensorBoard logs)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2

from pipeline.config import PipelineConfig
from pipeline.summary import metadata_store_of, mlmd_property, pipeline_runs

Event = metadata_store_pb2.Event
_INPUT_EVENTS = (Event.INPUT, Event.DECLARED_INPUT)
_OUTPUT_EVENTS = (Event.OUTPUT, Event.DECLARED_OUTPUT)


class MissingInput(LookupError):
    """What a report needs is not there: no such run, or no evaluation in it."""


@dataclasses.dataclass(frozen=True)
class RunArtifacts:
    run_id: str
    evaluation_uri: str
    blessed: bool
    eval_examples_uri: str
    model_uri: str  # the candidate Model artifact (the SavedModel is in Format-Serving/)
    model_run_uri: str | None  # the Trainer's TensorBoard logs; None if not recorded
    span: int  # the eval examples' span (0 when the data is not in spans)


def find_run(config: PipelineConfig, run: str | None = None) -> RunArtifacts:
    """`run`: a pipeline run id, an Evaluator output path, or None for the latest run."""
    store = metadata_store_of(config)
    if run and Path(run).exists():
        evaluation = _evaluation_at(store, str(Path(run).absolute()))
        evaluator = _producer(store, evaluation.id)
        run_id = _run_context(store, evaluator.id).name
    else:
        run_id, evaluation = _evaluation_of_run(store, config, run)
        evaluator = _producer(store, evaluation.id)
    inputs = _artifacts_by_key(store, evaluator.id, _INPUT_EVENTS)
    outputs = _artifacts_by_key(store, evaluator.id, _OUTPUT_EVENTS)
    model = inputs["model"]
    trainer_outputs = _artifacts_by_key(store, _producer(store, model.id).id, _OUTPUT_EVENTS)
    model_run = trainer_outputs.get("model_run")
    return RunArtifacts(
        run_id=run_id,
        evaluation_uri=evaluation.uri,
        blessed=mlmd_property(outputs["blessing"], "blessed", default=0) == 1,
        eval_examples_uri=inputs["examples"].uri,
        model_uri=model.uri,
        model_run_uri=model_run.uri if model_run else None,
        span=int(mlmd_property(inputs["examples"], "span", default=0)),
    )


def _evaluation_of_run(store, config: PipelineConfig, run_id: str | None):
    runs = pipeline_runs(store)
    if run_id:
        runs = [context for context in runs if context.name == run_id]
        if not runs:
            raise MissingInput(f"No pipeline run {run_id!r} in {config.metadata_path} (give a "
                               "run id as `make pipeline` prints it, or an Evaluator output path).")
    if not runs:
        raise MissingInput(f"No pipeline run recorded in {config.metadata_path}.")
    run = runs[-1]
    evaluation_type = store.get_artifact_type("ModelEvaluation")
    evaluations = [artifact for artifact in store.get_artifacts_by_context(run.id)
                   if artifact.type_id == evaluation_type.id
                   and artifact.state == metadata_store_pb2.Artifact.LIVE]
    if not evaluations:
        raise MissingInput(f"Run {run.name} has no model evaluation: did the Evaluator run?")
    return run.name, evaluations[0]


def _evaluation_at(store, uri: str):
    evaluation_type = store.get_artifact_type("ModelEvaluation")
    matches = [artifact for artifact in store.get_artifacts_by_uri(uri)
               if artifact.type_id == evaluation_type.id]
    if not matches:
        raise MissingInput(f"{uri} is not an Evaluator output recorded in this pipeline's "
                           "metadata.")
    return matches[0]


def _producer(store, artifact_id: int):
    """The execution that wrote the artifact (the first: a cached rerun records it too)."""
    execution_id = min(event.execution_id
                       for event in store.get_events_by_artifact_ids([artifact_id])
                       if event.type in _OUTPUT_EVENTS)
    [execution] = store.get_executions_by_id([execution_id])
    return execution


def _artifacts_by_key(store, execution_id: int, event_types) -> dict:
    """The execution's input or output artifacts, by their key (e.g. "model")."""
    events = [event for event in store.get_events_by_execution_ids([execution_id])
              if event.type in event_types]
    artifacts = {artifact.id: artifact
                 for artifact in store.get_artifacts_by_id([e.artifact_id for e in events])}
    return {event.path.steps[0].key: artifacts[event.artifact_id] for event in events}


def _run_context(store, execution_id: int):
    [run] = [context for context in store.get_contexts_by_execution(execution_id)
             if context.type == "pipeline_run"]
    return run
