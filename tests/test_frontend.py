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


@pytest.mark.parametrize("flags", [["--mp"], ["--multi-process"], ["-p", "2"], ["-p2"], ["--mp", "-p", "2"]])
def test_process_flags_run_worker_processes(pytester: pytest.Pytester, flags) -> None:
    project(pytester)
    result = fleet(pytester, *flags, "--dist-mark", "m1 m2", "-p", "no:cacheprovider", "-rP")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert outcomes(result) == {"passed": 2, "deselected": 1}
    result.stdout.fnmatch_lines(["ENV mock http://127.0.0.1:1 alice p?"])


def test_help_shows_fleet_options_first(pytester: pytest.Pytester) -> None:
    result = fleet(pytester, "--help")
    assert result.ret == 0
    assert result.stdout.lines[0].startswith("usage: fleet [run]")
    text = result.stdout.str()
    assert text.index("--dist-mark M [M ...]") < text.index("pytest's help follows") < text.index("--fleet-env")


HOOKS = """
from fleet import command, hook

@command("--tag", help="label for this run")
def tag(value):
    print(f"TAG={value}")

@hook
def around():
    print("HOOK BEFORE")
    yield
    print("HOOK AFTER")
"""

LOGIN = """
import os
class Login:
    def login(self):
        with open(os.path.join(os.path.dirname(__file__), "logins.txt"), "a") as f:
            f.write("login\\n")
        return {"token": "s3cret"}
    def make_headers(self, response):
        return {"Authorization": "Bearer " + response["token"]}
"""

LOGGED_IN_TESTS = """
import pytest, time
@pytest.mark.m1
@pytest.mark.parametrize("n", range(3))
def test_m1(n, fleet_login, fleet_env):
    time.sleep(0.05)
    assert fleet_login == {"Authorization": "Bearer s3cret"}
    print(f"SEEN {fleet_env.name}")
@pytest.mark.m2
@pytest.mark.parametrize("n", range(3))
def test_m2(n, fleet_login):
    time.sleep(0.05)
    assert fleet_login["Authorization"].endswith("s3cret")
@pytest.mark.m2
def test_m2_fails():
    assert False, "a failure the run must report"
"""


def aomaker_project(pytester: pytest.Pytester, run_py: str) -> None:
    project(pytester)
    (pytester.path / "hooks.py").write_text(HOOKS)
    (pytester.path / "login.py").write_text(LOGIN)
    (pytester.path / "test_env.py").unlink()
    pytester.makepyfile(test_api=LOGGED_IN_TESTS)
    (pytester.path / "run.py").write_text(run_py)


def check_run(pytester: pytest.Pytester, result: pytest.RunResult, env: str) -> None:
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert outcomes(result) == {"passed": 6, "failed": 1}
    lines = result.stdout.lines
    before = lines.index("HOOK BEFORE")
    starts = next(i for i, l in enumerate(lines) if "test session starts" in l)
    summary = next(i for i, l in enumerate(lines) if "1 failed, 6 passed" in l)
    assert before < starts < summary < lines.index("HOOK AFTER")
    assert (pytester.path / "logins.txt").read_text() == "login\n"  # once for the run
    assert result.stdout.str().count(f"SEEN {env}") == 3


def test_main_run_from_run_py(pytester: pytest.Pytester) -> None:
    aomaker_project(pytester, """
import sys
from fleet import main_run
from login import Login
sys.exit(main_run(env="test", mt=True, d_mark="m1 m2", pytest_args=["-p", "no:cacheprovider", "-rP"],
                  login=Login()))
""")
    check_run(pytester, pytester.run(sys.executable, "run.py", timeout=120), env="test")


def test_older_threads_run_form(pytester: pytest.Pytester) -> None:
    aomaker_project(pytester, """
import sys
from fleet import threads_run
from login import Login
sys.exit(threads_run(["-m m1", "-m m2"], login=Login(), pytest_args=["-p", "no:cacheprovider", "-rP"]))
""")
    check_run(pytester, pytester.run(sys.executable, "run.py", timeout=120), env="mock")


def test_command_runs_hooks_and_custom_options(pytester: pytest.Pytester) -> None:
    aomaker_project(pytester, "")
    (pytester.path / "conftest.py").write_text(
        "def pytest_fleet_login(config):\n    from login import Login\n    return Login()\n")
    result = fleet(pytester, "--mt", "--dist-mark", "m1", "m2", "--tag", "nightly",
                   "-p", "no:cacheprovider", "-rP")
    assert result.stdout.lines[0] == "TAG=nightly"
    check_run(pytester, result, env="mock")


def test_broken_config_yaml_is_one_line(pytester: pytest.Pytester) -> None:
    project(pytester)
    (pytester.path / "conf" / "config.yaml").write_text("env: mock\nmock: [unclosed\n")
    result = fleet(pytester, "--env", "mock", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [l for l in result.stderr.lines if l.strip()]
    assert len(errors) == 1 and errors[0].startswith(
        "ERROR: fleet: conf/config.yaml: not valid YAML at line 3"), errors
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_processes_run_with_login_shared_by_every_process(pytester: pytest.Pytester) -> None:
    aomaker_project(pytester, """
import sys
from fleet import processes_run
from login import Login
sys.exit(processes_run(["-m m1", "-m m2"], login=Login(), processes=2,
                       pytest_args=["-p", "no:cacheprovider", "-rP"]))
""")
    check_run(pytester, pytester.run(sys.executable, "run.py", timeout=120), env="mock")


def test_hook_ends_after_a_worker_crash(pytester: pytest.Pytester) -> None:
    aomaker_project(pytester, "")
    pytester.makepyfile(test_crash="""
        import os, pytest
        @pytest.mark.m1
        def test_dies(): os._exit(7)
    """)
    (pytester.path / "conftest.py").write_text(
        "def pytest_fleet_login(config):\n    from login import Login\n    return Login()\n")
    result = fleet(pytester, "--mp", "-p", "2", "--dist-mark", "m1 m2", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes(result) == {"passed": 6, "failed": 2}
    result.stdout.fnmatch_lines(["worker p? crashed: exit code 7 while running test_crash.py::test_dies"])
    assert result.stdout.lines[-1] == "HOOK AFTER"
