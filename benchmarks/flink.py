"""Ingestion and Transform on Flink: ImageExampleGen and Transform as TFX components on the
local Flink cluster (pipeline/flink.py) at parallelism 1 and 2, against the DirectRunner
with 2 worker processes, on the same generated images.

Each runner runs a small pipeline of the project's own components (ImageExampleGen ->
StatisticsGen -> SchemaGen -> Transform, LocalDagRunner, no cache), with the Beam args
PipelineConfig gives it; a component's time is its execution's in MLMD, from its start
to its outputs' publication. Beside them, an empty Beam job with the same args (one
element through one step; on Flink our package staged and installed by every worker,
as for the components): what a job costs before its first image. What a component takes
beyond it, per image, is the part that more machines would divide.

    python -m benchmarks.flink [--images 400]
"""
import argparse
import tempfile
import time
from pathlib import Path


import apache_beam as beam
from tfx import v1 as tfx

from benchmarks import common
from components.image_example_gen.component import ImageExampleGen
from data.generate import generate_dataset
from metadata.store import component_of, open_store
from pipeline import flink
from pipeline.config import PipelineConfig
from pipeline.definition import PREPROCESSING_MODULE, statistics_options

RUNNERS = {"DirectRunner, 2 workers": PipelineConfig(beam_num_workers=2),
           "Flink, parallelism 1": PipelineConfig(beam_runner="flink", beam_num_workers=1),
           "Flink, parallelism 2": PipelineConfig(beam_runner="flink", beam_num_workers=2)}
TIMED = ("ImageExampleGen", "Transform")


def empty_job_seconds(beam_args: list[str]) -> float:
    started = time.perf_counter()
    with beam.Pipeline(argv=beam_args) as pipeline:
        # A builtin: the step unpickles on any worker, our package or not.
        _ = pipeline | beam.Create([0]) | beam.Map(str)
    return time.perf_counter() - started


def component_seconds(data_root: Path, work_dir: Path, config: PipelineConfig) -> dict[str, float]:
    """Each component's execution time in a pipeline of ingestion, statistics, schema and
    Transform, as the project's pipeline wires them."""
    example_gen = ImageExampleGen(input_base=str(data_root))
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], stats_options=statistics_options())
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        module_file=PREPROCESSING_MODULE,
        custom_config=config.transform_config().to_custom_config(), disable_statistics=True)
    metadata_path = str(work_dir / "metadata.sqlite")
    name = "flink-benchmark"
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name=name, pipeline_root=str(work_dir / "pipeline_root"),
        components=[example_gen, statistics_gen, schema_gen, transform],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path),
        enable_cache=False, beam_pipeline_args=config.beam_pipeline_args()))
    store = open_store(metadata_path)
    return {component_of(store, execution, name):
            (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
            for execution in store.get_executions()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=400, help="in all, 5/6 of them train")
    args = parser.parse_args()
    per_class = args.images // 2
    print(f"Machine: {common.machine()}")
    flink_dir = PipelineConfig().flink_dir
    flink.install(flink_dir)  # before any timing: the first time, Maven and Go take minutes
    figures = {}
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        data_root = work / "data"
        generate_dataset(data_root, train_per_class=per_class * 5 // 6,
                         test_per_class=per_class - per_class * 5 // 6, seed=0)
        images = sum(1 for _ in data_root.glob("*/*/*.jpg"))
        print(f"{images} generated JPEGs; Beam args from PipelineConfig.beam_pipeline_args()")
        started = time.perf_counter()
        with flink.local_flink_cluster(flink_dir):
            print(f"local Flink cluster (job server, worker pool) up in "
                  f"{time.perf_counter() - started:.1f} s")
            for label, config in RUNNERS.items():
                empty = empty_job_seconds(config.beam_pipeline_args())
                seconds = component_seconds(data_root, work / label.replace(" ", "-"), config)
                figures[label] = (empty, seconds)
                print(f"{label:24} empty job {empty:5.1f} s; " + "; ".join(
                    f"{component} {seconds[component]:5.1f} s "
                    f"({(seconds[component] - empty) / images * 1000:5.1f} ms/image beyond it)"
                    for component in TIMED))
    direct = figures["DirectRunner, 2 workers"][1]
    for label in ("Flink, parallelism 1", "Flink, parallelism 2"):
        print(f"ratio {label}/DirectRunner: " + ", ".join(
            f"{component} {figures[label][1][component] / direct[component]:.2f}"
            for component in TIMED))


if __name__ == "__main__":
    main()
