"""The Makefile passes what a user types (RUN=..., CRON=...) to the commands as one
argument each, whatever it holds: never to a shell to run; `make help` lists its commands."""
import os
import re
import subprocess

import pytest

from tests.helpers import REPO_ROOT

# Each fake command writes its arguments, NUL-separated, to $ARGUMENTS_FILE.
FAKE_COMMAND = ('#!/bin/sh\n'
                'for argument in "$@"; do printf "%s\\0" "$argument"; done > "$ARGUMENTS_FILE"\n')


@pytest.mark.parametrize("target, settings, expected", [
    ("report", {"RUN": "x; touch {marker}"}, ["x; touch {marker}"]),
    ("report", {"RUN": "r", "COMPARE_WITH": "`touch {marker}`"},
     ["r", "--compare-with", "`touch {marker}`"]),
    ("kubeflow-schedule", {"CRON": '0 0 3 * * 1"; touch {marker}; echo "'},
     ["-m", "kubeflow.submit", "schedule", "--cron", '0 0 3 * * 1"; touch {marker}; echo "']),
    ("kubeflow-unschedule", {"ID": "`touch {marker}`"},
     ["-m", "kubeflow.submit", "unschedule", "--id", "`touch {marker}`"]),
    # A list of files: split into names, never run.
    ("predict", {"IMAGES": "a.jpg `touch {marker}`"}, ["a.jpg", "`touch", "{marker}`"]),
], ids=["run", "compare_with", "cron", "id", "images"])
def test_a_value_with_shell_syntax_reaches_the_command_as_one_argument(
        tmp_path, target, settings, expected):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for command in ("python", "cats-dogs-report", "cats-dogs-predict"):
        (fake_bin / command).write_text(FAKE_COMMAND)
        (fake_bin / command).chmod(0o755)
    marker = tmp_path / "injected"
    arguments = [f"{name}={value.format(marker=marker)}" for name, value in settings.items()]
    result = subprocess.run(["make", "-s", "-C", str(REPO_ROOT), target, f"BIN={fake_bin}",
                             *arguments], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "ARGUMENTS_FILE": str(tmp_path / "arguments")})
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    received = (tmp_path / "arguments").read_text().split("\0")[:-1]
    assert received == [value.format(marker=marker) for value in expected]


def test_make_help_lists_every_command_a_user_runs_with_what_it_does():
    result = subprocess.run(["make", "-s", "-C", str(REPO_ROOT), "help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    described = dict(re.fullmatch(r"make (\S+) +(\S.*)", line).groups()
                     for line in result.stdout.splitlines())
    assert {"pipeline", "test", "settings", "report", "retrain", "history", "predict",
            "help"} <= described.keys()
    # Every target is described but the steps of `make pipeline`, run under its lock.
    targets = set(re.findall(r"^([a-z][a-z-]*):(?!=)", (REPO_ROOT / "Makefile").read_text(),
                             re.MULTILINE))
    assert targets - described.keys() == {"pipeline-run"}
