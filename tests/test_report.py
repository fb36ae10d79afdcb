"""The report command's fast paths; the report itself is tested on a real pipeline run in
test_pipeline_e2e.py."""
import pytest

from reports import cli, paths


def test_report_names_are_safe_file_names():
    assert paths.report_stem("2026-11-26T23:49:37.675152", "a/b") == (
        "2026-11-26T23-49-37.675152_vs_a-b")


def test_no_pipeline_run_yet_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path))
    assert cli.main([]) == 1
    assert "No report: No pipeline run recorded" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_the_command_line_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "--compare-with" in capsys.readouterr().out
