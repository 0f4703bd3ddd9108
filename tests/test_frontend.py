"""The fleet command with aomaker's flags, and conf/config.yaml environments."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from conftest import outcomes

CONFIG = """\
env: mock
mock:
  host: http://127.0.0.1:1
  user: alice
test:
  host: https://test.example
  user: bob
"""


def fleet(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    command = shutil.which("fleet", path=str(Path(sys.executable).parent))
    assert command, "the fleet console script is installed beside python"
    return pytester.run(command, *args, timeout=120)


def project(pytester: pytest.Pytester) -> None:
    (pytester.path / "conf").mkdir()
    (pytester.path / "conf" / "config.yaml").write_text(CONFIG)
    pytester.makeini("[pytest]\nmarkers =\n    m1\n    m2\n")
    pytester.makepyfile(
        test_env="""
        import pytest
        @pytest.mark.m1
        def test_env(fleet_env, worker_id):
            print(f"ENV {fleet_env.name} {fleet_env['host']} {dict(fleet_env)['user']} {worker_id}")
            with pytest.raises(TypeError):
                fleet_env["host"] = "changed"
        @pytest.mark.m2
        def test_other():
            pass
        def test_unmarked():
            pass
        """
    )


def test_run_with_aomaker_flags(pytester: pytest.Pytester) -> None:
    project(pytester)
    before = (pytester.path / "conf" / "config.yaml").read_bytes()
    result = fleet(pytester, "run", "--mt", "--dist-mark", "m1 m2", "--env", "test",
                   "-p", "no:cacheprovider", "-rP")
    assert result.ret == 0, result.stdout.str()
    assert outcomes(result) == {"passed": 2, "deselected": 1}
    result.stdout.fnmatch_lines(["ENV test https://test.example bob t*"])
    assert (pytester.path / "conf" / "config.yaml").read_bytes() == before
    assert not (pytester.path / ".pytest_cache").exists()  # -p no:cacheprovider reached pytest


def test_environment_from_the_file_and_from_pytest(pytester: pytest.Pytester) -> None:
    project(pytester)
    result = fleet(pytester, "-rP", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["ENV mock http://127.0.0.1:1 alice master"])
    result = pytester.runpytest_subprocess("--fleet-env", "test", "-rP", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["ENV test https://test.example bob master"])


def test_unknown_environment_lists_the_known_ones(pytester: pytest.Pytester) -> None:
    project(pytester)
    result = fleet(pytester, "--env", "prod", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [l for l in result.stderr.lines if l.strip()] == [
        "ERROR: fleet: --env prod is not an environment in conf/config.yaml (known: mock, test)"]


@pytest.mark.parametrize("flags", [["--mp"], ["--multi-process"], ["-p", "4"], ["-p4"]])
def test_processes_are_refused_plainly_until_they_exist(pytester: pytest.Pytester, flags) -> None:
    project(pytester)
    result = fleet(pytester, *flags)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [l for l in result.stderr.lines if l.strip()] == [
        "ERROR: fleet: worker processes (--mp, -p N) are not available in this version; use --mt"]


def test_help_shows_fleet_options_first(pytester: pytest.Pytester) -> None:
    result = fleet(pytester, "--help")
    assert result.ret == 0
    assert result.stdout.lines[0].startswith("usage: fleet [run]")
    text = result.stdout.str()
    assert text.index("--dist-mark M [M ...]") < text.index("pytest's help follows") < text.index("--fleet-env")
