"""The run's console (pipeline/console.py, models/console.py): a line per stage on the
screen, everything else in the log file the first line names."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import REPO_ROOT, full_log

# A command as noisy as a pipeline run: C++-style log lines on stderr, pip's on stdout, a
# child process printing too, and the lines meant for a person.
NOISY_COMMAND = textwrap.dedent("""
    import subprocess, sys
    from models import console
    print("Looking in links: /opt/wheels", flush=True)
    print("E0000 cuda_fft.cc:479] Unable to register cuFFT factory", file=sys.stderr, flush=True)
    console.show("  ImageExampleGen  12 s  1,000 train + 200 eval images ingested")
    subprocess.run([sys.executable, "-c",
                    "from models import console; print('child noise', flush=True); "
                    "console.show('  Trainer  1 min 05 s  27 of 150 epochs')"], check=True)
    for epoch in range(3):
        console.show_progress(f"  Trainer: epoch {epoch + 1}/3")
    sys.exit(int(sys.argv[1]))
""")


def run_console(tmp_path: Path, exit_status: int = 0, **environment) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.console", "test-run", "--", sys.executable, "-c",
         NOISY_COMMAND, str(exit_status)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "OUTPUT_DIR": str(tmp_path), **environment})


def test_the_console_shows_the_stage_lines_and_the_log_holds_everything(tmp_path):
    result = run_console(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(rf"Full log: {tmp_path}/logs/test-run-\d{{8}}-\d{{6}}-\d+\.log", lines[0])
    # Off a terminal, the first progress line only (the next come 20 s later at most).
    assert lines[1:] == ["  ImageExampleGen  12 s  1,000 train + 200 eval images ingested",
                         "  Trainer  1 min 05 s  27 of 150 epochs", "  Trainer: epoch 1/3"]
    assert result.stderr == ""
    log = full_log(result.stdout)
    for noise in ("Looking in links", "Unable to register cuFFT factory", "child noise"):
        assert noise in log
    assert not list((tmp_path / "logs").glob("*.console"))


def test_a_failed_command_shows_the_end_of_its_log_and_its_exit_status(tmp_path):
    result = run_console(tmp_path, exit_status=3)
    assert result.returncode == 3
    assert "Unable to register cuFFT factory" in result.stderr
    assert re.search(r"Failed \(exit status 3\)\. Full log: .*test-run-.*\.log", result.stderr)


def test_verbose_shows_the_whole_output_as_before(tmp_path):
    result = run_console(tmp_path, VERBOSE="1")
    assert result.returncode == 0
    for noise in ("Looking in links", "Unable to register cuFFT factory", "child noise"):
        assert noise in result.stderr
    assert "  Trainer  1 min 05 s  27 of 150 epochs" in result.stdout


def test_a_misspelt_setting_stops_before_the_command_runs(tmp_path):
    result = run_console(tmp_path, TRAIN_EPOCH="20")
    assert result.returncode != 0
    assert "Unknown setting TRAIN_EPOCH: did you mean TRAIN_EPOCHS?" in result.stderr
    assert not (tmp_path / "logs").exists()


def test_two_commands_started_in_the_same_second_keep_their_own_logs_and_lines(tmp_path):
    """A second `make pipeline` refused beside a first one used to share its log name,
    truncate its file of console lines and delete it under the first run's feet."""
    commands = [subprocess.Popen(
        [sys.executable, "-m", "pipeline.console", "test-run", "--", sys.executable, "-c",
         NOISY_COMMAND, "0"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "OUTPUT_DIR": str(tmp_path)}) for _ in range(2)]
    outputs = [command.communicate(timeout=120) for command in commands]
    assert [command.returncode for command in commands] == [0, 0], outputs
    logs = {stdout.splitlines()[0] for stdout, _ in outputs}
    assert len(logs) == 2
    for stdout, _ in outputs:
        assert "  Trainer  1 min 05 s  27 of 150 epochs" in stdout
