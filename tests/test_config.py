"""PipelineConfig: defaults, checks that name the setting, environment overrides, and
a cheap import."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import (FLINK_ARTIFACT_PORT, FLINK_JOB_SERVER_PORT, FLINK_WORKER_POOL_PORT,
                             LOCAL, SETUP_FILE, PipelineConfig)
from pipeline.source import REPO_ROOT


def test_defaults_are_valid_and_paths_land_under_output_dir(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path))
    for path in (config.pipeline_root, config.metadata_path, config.serving_model_dir):
        assert path.startswith(str(tmp_path))


def test_each_pipeline_is_served_from_a_folder_of_its_own(tmp_path):
    """TF Serving's layout for several models: <serving_model>/<model name>/<version>."""
    assert [PipelineConfig(output_dir=str(tmp_path), pipeline_name=name).serving_model_dir
            for name in ("cats-dogs-resnet", "experiment-tiny")] == [
        str(tmp_path / "serving_model" / "cats-dogs-resnet"),
        str(tmp_path / "serving_model" / "experiment-tiny")]


def test_uri_roots_are_kept_as_uris():
    config = PipelineConfig(output_dir="gs://bucket/runs", data_root="gs://bucket/data")
    assert config.pipeline_root == "gs://bucket/runs/pipeline_root/cats-dogs-resnet"
    assert config.input_base == "gs://bucket/data"


@pytest.mark.parametrize("setting, value, allowed", [
    ("resnet_depth", 42, "one of 18, 34, 50, 101, 152"),
    ("image_size_px", 0, "an integer >= 1 and <= 4,096"),
    ("image_size_px", 64.5, "an integer >= 1"),
    ("min_accuracy", 1.5, "a number in [0, 1]"),
    ("max_split_overlap_fraction", -0.1, "a number in [0, 1]"),
    ("bn_momentum", 1.0, "a number in (0, 1)"),
    ("class_names", ("dogs", "cats"), "sorted order"),
    ("warmup_steps", -1, "an integer >= 0"),
    ("label_smoothing", 1.0, "[0, 1)"),
    ("mixed_precision", "yes", "one of auto, on, off"),
    ("early_image_scale", 0.0, "a number in (0, 1]"),
    ("early_image_scale", 1.5, "a number in (0, 1]"),
    ("full_size_epochs", 0, "an integer >= 1"),
])
def test_a_wrong_setting_is_named_with_what_is_allowed(setting, value, allowed):
    with pytest.raises(ValueError, match=rf"{setting}=.*expected .*{re.escape(allowed)}"):
        PipelineConfig(**{setting: value})


def test_the_early_epochs_image_size_follows_image_size_px():
    assert PipelineConfig().early_image_size_px == 96  # 0.75 x 128
    assert PipelineConfig(image_size_px=64).model_config().early_image_size_px == 48
    assert PipelineConfig(early_image_scale=1.0).early_image_size_px == 128  # off
    assert PipelineConfig(image_size_px=1, early_image_scale=0.1).early_image_size_px == 1


def test_every_field_can_be_set_from_the_environment():
    config = PipelineConfig.from_env({
        "DATA_ROOT": "/data/kaggle", "TRAIN_EPOCHS": "120", "MIN_ACCURACY": "0.85",
        "ENABLE_CACHE": "false", "CLASS_NAMES": "cat, dog", "UNRELATED": "x",
    })
    assert (config.data_root, config.train_epochs, config.min_accuracy) == ("/data/kaggle", 120, 0.85)
    assert config.enable_cache is False
    assert config.class_names == ("cat", "dog")


@pytest.mark.parametrize("variable, meant", [
    ("TRAIN_STEPS", "TRAIN_EPOCHS"),  # former settings, which benchmarks/gpu.sh still set
    ("STEPS_PER_EPOCH", "TRAIN_EPOCHS"),
    ("DISTRIBUTION_STRATEGY", "TRAINER_WORKERS"),
    ("TRAIN_EPOCH", "TRAIN_EPOCHS"),
    ("MIN_ACURACY", "MIN_ACCURACY"),
    ("SPAN", "SPANS"),
    ("train_epochs", "TRAIN_EPOCHS"),
])
def test_a_variable_that_looks_like_a_setting_stops_naming_the_setting_meant(variable, meant):
    with pytest.raises(ValueError, match=rf"Unknown setting {variable}: .*did you mean {meant}\?"):
        PipelineConfig.from_env({"TRAIN_EPOCHS": "20", variable: "20"})


def test_the_environment_s_other_variables_are_no_settings_and_pass():
    """Only names close to a setting's count: the shell's, CI's, TensorFlow's, the cloud
    tools' and the Kubeflow commands' own variables pass, as do settings given unprefixed."""
    environ = {name: "x" for name in (
        "PATH", "HOME", "USER", "CI", "GITHUB_ACTIONS", "AWS_ACCESS_KEY_ID", "AWS_REGION",
        "TF_CONFIG", "TF_USE_LEGACY_KERAS", "TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL",
        "KFP_ENDPOINT", "KF_PIPELINES_ENDPOINT", "KFP_NAMESPACE", "KFP_EXISTING_TOKEN",
        "LOCAL_HOME", "CONTAINER_TOOL", "IMAGE_VARIANTS", "TEST_WORKERS", "VERTEX_PRODUCT",
        "GOOGLE_CLOUD_PROJECT", "PYTHONWARNINGS", "RUN", "COMPARE_WITH", "CRON", "ID")}
    config = PipelineConfig.from_env({**environ, "OUTPUT_DIR": "/runs", "SPANS": "true"})
    assert (config.output_dir, config.spans) == ("/runs", True)


def test_make_settings_lists_every_setting_with_default_allowed_and_current_value():
    result = subprocess.run([sys.executable, "-m", "pipeline.settings"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "TRAIN_EPOCHS": "20"})
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split(None, 1)[1] for line in result.stdout.splitlines()[1:]}
    assert set(rows) == {field.upper() for field in PipelineConfig.__dataclass_fields__}
    assert re.fullmatch(r"80 +integer 1\.\.1,000,000 +20", rows["TRAIN_EPOCHS"])
    assert re.fullmatch(r"direct +direct, flink, dataflow +direct", rows["BEAM_RUNNER"])
    assert re.fullmatch(r"0\.7 +number \[0, 1\] +0\.7", rows["MIN_ACCURACY"])


def test_make_settings_names_a_misspelt_setting():
    result = subprocess.run([sys.executable, "-m", "pipeline.settings"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "TRAIN_STEPS": "20"})
    assert (result.returncode, result.stdout) == (1, "")
    assert "did you mean TRAIN_EPOCHS?" in result.stderr


def test_an_unparsable_environment_value_is_named():
    with pytest.raises(ValueError, match=r"TRAIN_EPOCHS='lots'.*int"):
        PipelineConfig.from_env({"TRAIN_EPOCHS": "lots"})


@pytest.mark.parametrize("env_name, text, allowed", [
    ("LEARNING_RATE", "inf", "a positive number up to 10.0"),
    ("LEARNING_RATE", "nan", "a positive number up to 10.0"),
    ("WIDTH_MULTIPLIER", "inf", "a positive number up to 16.0"),
    ("TASK_MEMORY_GIB", "1e9", "a positive number up to 65536.0"),
    ("BEAM_NUM_WORKERS", "100000", "an integer >= 0 and <= 4,096"),
    ("IMAGE_SIZE_PX", "100000", "an integer >= 1 and <= 4,096"),
    ("MAX_IMAGE_PIXELS", str(2 ** 70), "an integer >= 1 and <= 4,294,967,296"),
    ("MAX_FILE_BYTES", str(2 ** 70), "an integer >= 1 and <= 2,147,483,647"),
    ("SHUFFLE_SEED", str(2 ** 64), "an integer >= 0 and <= 9,223,372,036,854,775,807"),
    ("PIPELINE_NAME", "p" * 300, "at most 128 characters"),
])
def test_every_numeric_setting_and_the_name_are_bounded(env_name, text, allowed):
    # Each of these was accepted, and failed later, deep in a run (or never).
    with pytest.raises(ValueError,
                       match=rf"{env_name.lower()}=.*expected .*{re.escape(allowed)}"):
        PipelineConfig.from_env({env_name: text})


def test_the_bounds_leave_room_for_large_legitimate_settings():
    PipelineConfig(pipeline_name="p" * 128, image_size_px=1024, width_multiplier=4.0,
                   learning_rate=1.0, beam_num_workers=256, trainer_workers=64,
                   trainer_gpu_count=16, trainer_cpu=192, trainer_memory_gib=2048,
                   max_image_pixels=1_000_000_000, max_file_bytes=2 ** 30)


def test_a_missing_data_root_is_named(tmp_path):
    PipelineConfig(data_root=str(tmp_path)).check_data_root_exists()
    PipelineConfig(data_root="gs://bucket/data").check_data_root_exists()  # not checked here
    with pytest.raises(ValueError, match=r"data_root='/no/such/folder'.*does not exist"):
        PipelineConfig(data_root="/no/such/folder").check_data_root_exists()


@pytest.mark.parametrize("setting, value, allowed", [
    ("pipeline_name", "../elsewhere", "letters, digits"),  # would leave output_dir
    ("pipeline_name", "a/b", "letters, digits"),
    ("pipeline_name", "", "letters, digits"),
    ("data_root", "/data/cats[1]", "without the wildcard characters * ? ["),
    ("data_root", "/data/*", "without the wildcard characters"),
    ("output_dir", "/runs/[new]", "without the wildcard characters"),
    ("max_file_bytes", 0, "an integer >= 1"),
])
def test_a_setting_that_would_misdirect_paths_is_refused(setting, value, allowed):
    with pytest.raises(ValueError, match=rf"{setting}=.*expected .*{re.escape(allowed)}"):
        PipelineConfig(**{setting: value})


def test_reading_the_config_loads_neither_tensorflow_nor_tfx():
    """Tools that only read settings (kubeflow submit, the report) start in a blink."""
    # In a fresh process: this one has both from the other test modules and conftest.
    script = ("import sys, pipeline.config; "
              "print(sorted({'tensorflow', 'tfx'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_beam_runs_on_the_direct_runner_unless_told_otherwise():
    assert PipelineConfig().beam_runner == "direct"
    assert PipelineConfig.from_env({"BEAM_RUNNER": "flink"}).beam_runner == "flink"
    assert PipelineConfig(beam_num_workers=2).beam_pipeline_args() == [
        "--direct_running_mode=multi_processing", "--direct_num_workers=2",
        f"--setup_file={SETUP_FILE}"]


def test_local_flink_args_name_the_local_cluster_and_send_our_code_as_a_setup_file():
    assert PipelineConfig(beam_runner="flink", beam_num_workers=2).beam_pipeline_args() == [
        "--runner=PortableRunner", f"--job_endpoint=localhost:{FLINK_JOB_SERVER_PORT}",
        f"--artifact_endpoint=localhost:{FLINK_ARTIFACT_PORT}",
        "--environment_type=EXTERNAL", f"--environment_config=localhost:{FLINK_WORKER_POOL_PORT}",
        "--environment_cache_millis=10000", "--parallelism=2", "--sdk_worker_parallelism=2",
        f"--setup_file={SETUP_FILE}"]
    # 0 workers: Flink's default parallelism (one per core) and its SDK workers (cores - 1).
    args = PipelineConfig(beam_runner="flink").beam_pipeline_args()
    assert "--sdk_worker_parallelism=0" in args
    assert not any(arg.startswith("--parallelism") for arg in args)


def test_what_the_local_engine_cannot_run_is_refused_before_any_work():
    config = PipelineConfig(beam_runner="dataflow", dataflow_project="my-project")
    with pytest.raises(ValueError, match=r"beam_runner='dataflow' for the local engine"):
        config.check_runs_on(LOCAL)
    with pytest.raises(ValueError, match=r"trainer_workers=2 for the local engine"):
        PipelineConfig(trainer_workers=2).check_runs_on(LOCAL)
    PipelineConfig().check_runs_on(LOCAL)  # the defaults run


def test_what_only_this_machine_uses_lies_under_output_dir_or_else_under_outputs(tmp_path):
    local = PipelineConfig(output_dir=str(tmp_path))
    assert local.flink_dir == str(tmp_path / "flink")
    assert local.kubeflow_spec_dir == str(tmp_path / "kubeflow")
    assert local.logs_dir == str(tmp_path / "logs")
    # A cluster's storage holds neither a JVM nor the spec compiled without reaching it.
    on_cluster = PipelineConfig(output_dir="gs://bucket/runs")
    assert on_cluster.flink_dir == str(Path("outputs", "flink").absolute())
    assert on_cluster.kubeflow_spec_dir == str(Path("outputs", "kubeflow").absolute())
    # A command's log is written as it runs, by this machine.
    assert on_cluster.logs_dir == str(Path("outputs", "logs").absolute())
