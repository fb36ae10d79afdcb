"""What the latest pipeline run did, read back from MLMD: `python -m pipeline.summary`."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from reports import paths as report_paths

# Overall metrics worth a line in the summary, in TFMA's names.
SUMMARY_METRICS = ("binary_accuracy", "auc", "precision", "recall", "example_count")


@dataclasses.dataclass
class RunSummary:
    run_id: str
    spans: list[int]  # of the examples the run ingested or trained on (0: no spans)
    blessed: bool
    metrics: dict[str, float]  # overall, by TFMA metric name
    failed_thresholds: list[str]  # TFMA's message for each threshold not met
    pushed_model_dir: str | None  # None when nothing was pushed
    evaluation_uri: str

    def lines(self) -> list[str]:
        metrics = ", ".join(f"{name} {value:.0f}" if name == "example_count" else
                            f"{name} {value:.3f}" for name, value in self.metrics.items())
        verdict = "BLESSED" if self.blessed else "NOT blessed (thresholds not met)"
        return [
            f"Run {self.run_id}: model {verdict}.",
            f"Eval metrics: {metrics}.",
            *(f"Threshold not met: {failure}" for failure in self.failed_thresholds),
            f"Pushed to {self.pushed_model_dir}" if self.pushed_model_dir
            else "Nothing pushed: the serving directory is unchanged.",
            f"TFMA results: {self.evaluation_uri}",
        ]


def metadata_store_of(config: PipelineConfig) -> metadata_store.MetadataStore:
    if not Path(config.metadata_path).exists():
        raise LookupError(f"No pipeline run recorded: {config.metadata_path} does not exist.")
    return metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))


def pipeline_runs(store: metadata_store.MetadataStore) -> list[metadata_store_pb2.Context]:
    """Every run recorded in the store, oldest first."""
    return sorted(store.get_contexts_by_type("pipeline_run"),
                  key=lambda context: context.create_time_since_epoch)


def latest_run_summary(config: PipelineConfig) -> RunSummary:
    """The blessing, eval metrics and push of the newest run in the MLMD store."""
    store = metadata_store_of(config)
    runs = pipeline_runs(store)
    if not runs:
        raise LookupError(f"No pipeline run recorded in {config.metadata_path}.")
    return summarize_run(store, runs[-1])


def summarize_run(store: metadata_store.MetadataStore,
                  run: metadata_store_pb2.Context) -> RunSummary:
    """Raises LookupError for a run that did not get as far as the Pusher."""
    artifacts = {artifact.type_id: artifact for artifact in store.get_artifacts_by_context(run.id)}

    def artifact_of(type_name: str) -> metadata_store_pb2.Artifact:
        type_id = store.get_artifact_type(type_name).id
        if type_id not in artifacts:
            raise LookupError(f"Run {run.name} has no {type_name}: did it finish?")
        return artifacts[type_id]

    evaluation = artifact_of("ModelEvaluation")
    blessing = artifact_of("ModelBlessing")
    pushed_model = artifact_of("PushedModel")
    overall = tfma.load_eval_result(evaluation.uri).get_metrics_for_slice()
    metrics = {name: float(overall[name]["doubleValue"])
               for name in SUMMARY_METRICS if name in overall}
    validation = tfma.load_validation_result(evaluation.uri)
    pushed = mlmd_property(pushed_model, "pushed", default=0) == 1
    return RunSummary(
        run_id=run.name,
        spans=_spans_used(store, run),
        blessed=mlmd_property(blessing, "blessed", default=0) == 1,
        metrics=metrics,
        failed_thresholds=[f"{failure.metric_key.name}: {failure.message}"
                           for per_slice in validation.metric_validations_per_slice
                           for failure in per_slice.failures],
        pushed_model_dir=mlmd_property(pushed_model, "pushed_destination") if pushed else None,
        evaluation_uri=evaluation.uri,
    )


def _spans_used(store: metadata_store.MetadataStore,
                run: metadata_store_pb2.Context) -> list[int]:
    """Spans of the examples the run's components read or wrote (Transform reads the
    training window, which the run context does not list)."""
    executions = [execution.id for execution in store.get_executions_by_context(run.id)]
    artifact_ids = {event.artifact_id for event in store.get_events_by_execution_ids(executions)}
    examples_type_id = store.get_artifact_type("Examples").id
    # Transform's outputs are Examples too, without a span.
    return sorted({artifact.custom_properties["span"].int_value
                   for artifact in store.get_artifacts_by_id(list(artifact_ids))
                   if artifact.type_id == examples_type_id
                   and "span" in artifact.custom_properties})


def mlmd_property(node, name: str, default=None):
    """A custom or declared property of an MLMD artifact or context, whatever its type."""
    for properties in (node.custom_properties, node.properties):
        if name in properties:
            value = properties[name]
            return getattr(value, value.WhichOneof("value"))
    return default


def main() -> int:
    config = PipelineConfig.from_env()
    try:
        summary = latest_run_summary(config)
    except LookupError as error:
        print(f"No summary: {error}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    report = report_paths.html_path(config, summary.run_id)
    if report.exists():
        print(f"Report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
