"""A run leaves nothing in the system's temporary folder: TFX's packaging of the user
code, and every process the run starts, write into the run's own folder, removed at the end."""
import os
import subprocess
import sys
import tempfile

from tfx.components.util import udf_utils

from pipeline.config import PipelineConfig
from pipeline.definition import PREPROCESSING_MODULE
from pipeline.local_runner import RUN_TEMP_DIR, run_temp_dir


def test_tfx_packages_the_user_code_in_the_run_s_folder_which_goes_when_the_run_ends(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path))
    with run_temp_dir(config) as folder:
        assert folder == os.path.join(config.pipeline_root, RUN_TEMP_DIR)
        # What Transform and Trainer do with their module files: a wheel built in
        # tempfile.mkdtemp() folders, of which TFX leaves two (the source, the wheel).
        udf_utils.package_user_module_file("Transform", PREPROCESSING_MODULE,
                                           config.pipeline_root)
        assert len(os.listdir(folder)) == 2
        child = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.mkdtemp())"],
                               capture_output=True, text=True, check=True)
        assert os.path.dirname(child.stdout.strip()) == folder
    assert not os.path.exists(folder)
    assert tempfile.gettempdir() != folder


def test_a_killed_run_s_leftovers_are_removed_by_the_next_run(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path))
    leftover = os.path.join(config.pipeline_root, RUN_TEMP_DIR, "tmpabc", "setup.py")
    os.makedirs(os.path.dirname(leftover))
    open(leftover, "w").close()
    with run_temp_dir(config) as folder:
        assert os.listdir(folder) == []


def test_the_environment_is_given_back_after_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with run_temp_dir(PipelineConfig(output_dir=str(tmp_path / "outputs"))):
        pass
    assert os.environ["TMPDIR"] == str(tmp_path)
