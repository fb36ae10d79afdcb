"""The local Flink cluster (pipeline/flink.py): our code reaches its SDK workers only as
the package Beam stages from --setup_file, never from this checkout, and the cluster
stops whole, also when the run inside it fails.

The cluster needs Java, Maven and Go (the first run fetches the job server and builds
Beam's boot program: minutes); the whole pipeline on it: test_flink_e2e.py.
"""
import json
import subprocess
import sys
import textwrap

import psutil
import pytest

from pipeline import flink
from pipeline.config import FLINK_JOB_SERVER_PORT, FLINK_WORKER_POOL_PORT, PipelineConfig
from tests.helpers import BLESSED_RUN_GROUP, REPO_ROOT

pytestmark = [
    pytest.mark.e2e,
    # One Flink cluster at a time (fixed ports): in the worker that runs test_flink_e2e.py.
    pytest.mark.xdist_group(BLESSED_RUN_GROUP),
    pytest.mark.skipif(bool(flink.missing_tools()), reason=(
        f"Beam on Flink needs {', '.join(flink.missing_tools())}, not on this machine")),
]

FLINK_DIR = PipelineConfig().flink_dir

# A Beam pipeline whose step imports one of our modules on the worker and says where
# from. Run as a script: Beam pickles __main__'s functions by value, so the worker needs
# our code for the import in the step's body, not to unpickle the step.
PROBE = textwrap.dedent("""
    import json, sys
    import apache_beam as beam

    def where_from(pattern):
        import os
        from components.image_example_gen import layout
        return json.dumps({"split_folder": layout.split_folder_from_pattern(pattern),
                           "module_file": layout.__file__, "worker_cwd": os.getcwd()})

    output, *args = sys.argv[1:]
    with beam.Pipeline(argv=args) as pipeline:
        _ = (pipeline | beam.Create(["training_set/*/*", "test_set/*/*"])
                      | beam.Map(where_from) | beam.io.WriteToText(output, num_shards=1))
""")


def run_probe(tmp_path, beam_args):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    return subprocess.run([sys.executable, str(script), str(tmp_path / "out"), *beam_args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_workers_import_our_code_from_the_staged_package_and_never_from_the_checkout(tmp_path):
    args = PipelineConfig(beam_runner="flink", beam_num_workers=2).beam_pipeline_args()
    [setup_file_arg] = [arg for arg in args if arg.startswith("--setup_file=")]
    with flink.local_flink_cluster(FLINK_DIR):
        staged = run_probe(tmp_path, args)
        assert staged.returncode == 0, staged.stderr[-5000:]
        reports = [json.loads(line) for line in (tmp_path / "out-00000-of-00001").open()]
        assert sorted(report["split_folder"] for report in reports) == ["test_set",
                                                                        "training_set"]
        for report in reports:
            # Installed by the worker from the staged package, into its own folder.
            assert report["module_file"].endswith(
                "/site-packages/components/image_example_gen/layout.py"), report
            assert not report["module_file"].startswith(str(REPO_ROOT)), report
            assert not report["worker_cwd"].startswith(str(REPO_ROOT)), report

        unstaged = run_probe(tmp_path, [arg for arg in args if arg != setup_file_arg])
        assert unstaged.returncode != 0
        assert "No module named 'components'" in unstaged.stderr, unstaged.stderr[-5000:]


def test_a_second_cluster_is_refused_and_a_failed_run_stops_the_cluster_whole():
    ours = psutil.Process()
    before = {child.pid for child in ours.children(recursive=True)}
    with pytest.raises(RuntimeError, match=f"Port {FLINK_JOB_SERVER_PORT} on localhost is taken"):
        with flink.local_flink_cluster(FLINK_DIR):
            started = {child.pid for child in ours.children(recursive=True)} - before
            assert started  # the job server and the worker pool
            with flink.local_flink_cluster(FLINK_DIR):  # fails, and so the run in the first one
                pass
    assert not {child.pid for child in ours.children(recursive=True)} & started
    for port in (FLINK_JOB_SERVER_PORT, FLINK_WORKER_POOL_PORT):
        assert not flink.port_in_use(port)
