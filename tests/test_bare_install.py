"""fleet as a user installs it: ``pip install .`` in a fresh environment, no extras.

The test environment has allure-pytest, pytest-xdist, pytest-timeout and the
rest installed; a user's usually has none of them. Here a new virtual
environment gets only fleet and its runtime dependencies (and the pytest
version this test runs under), and runs a small suite in every mode. A
runtime import of an optional integration, a missing runtime dependency or
a missing package-data file fails this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What fleet adapts to when it is there, and must never need.
OPTIONAL = ["allure_commons", "allure_pytest", "xdist", "pytest_asyncio", "pytest_timeout", "pytest_html", "ray", "coverage"]

SUITE = {
    "conftest.py": """
import pytest

@pytest.fixture(scope="session")
def token():
    return "t"

@pytest.fixture(scope="module")
def per_module(request):
    return request.module.__name__
""",
    "test_one.py": """
import time
import pytest

def test_pass(token, per_module, worker_id):
    time.sleep(0.05)
    assert token == "t" and per_module == __name__
    with open("workers.txt", "a") as f:
        f.write(worker_id + "\\n")

def test_fail():
    assert 1 == 2

@pytest.mark.skip(reason="not here")
def test_skip():
    pass

@pytest.mark.xfail
def test_xfail():
    assert 0
""",
    "test_two.py": """
import time
import pytest

@pytest.mark.parametrize("n", range(6))
def test_many(n, token, worker_id):
    time.sleep(0.05)
    with open("workers.txt", "a") as f:
        f.write(worker_id + "\\n")
""",
}


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``pip install .`` (not editable, no extras); returns its bin/."""
    root = tmp_path_factory.mktemp("bare")
    made = _run([sys.executable, "-m", "venv", str(root / "venv")], root)
    assert made.returncode == 0, made.stderr
    bin_dir = root / "venv" / "bin"
    installed = _run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         str(REPO), f"pytest=={pytest.__version__}"],
        root,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return bin_dir


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    for name, text in SUITE.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_environment_is_bare(bare: Path) -> None:
    probe = "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m)))"
    found = _run([str(bare / "python"), "-c", probe, *OPTIONAL], bare)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == []


@pytest.mark.parametrize(
    "mode",
    [[], ["--mt", "4"], ["--mp", "2"], ["--mp", "2", "--mt", "2"], ["-n", "2"]],
    ids=["serial", "mt4", "mp2", "mp2-mt2", "n2-without-xdist"],
)
def test_every_mode_runs_with_runtime_dependencies_only(bare: Path, suite: Path, mode: list[str]) -> None:
    result = _run(
        [str(bare / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--junitxml", "junit.xml", *mode],
        suite,
    )
    output = result.stdout + result.stderr
    assert "INTERNALERROR" not in output and "Traceback" not in output, output
    assert result.returncode == 1, output
    assert "1 failed, 7 passed, 1 skipped, 1 xfailed" in output, output
    cases = ET.parse(suite / "junit.xml").getroot().iter("testcase")
    assert len(list(cases)) == 10
    workers = set((suite / "workers.txt").read_text().split())
    if mode:
        assert "master" not in workers and len(workers) >= 2, workers
    else:
        assert workers == {"master"}


@pytest.mark.parametrize("mode", [["--mt", "4"], ["--mp", "2"]])
def test_timeline_page_is_shipped(bare: Path, suite: Path, mode: list[str]) -> None:
    result = _run([str(bare / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q", *mode,
                   "--timeline", "run.html"], suite)
    assert result.returncode == 1, result.stdout + result.stderr
    page = (suite / "run.html").read_text()
    assert "<html" in page.lower() and "test_many" in page


def test_fleet_command_names_itself(bare: Path, suite: Path) -> None:
    version = _run([str(bare / "fleet"), "--version"], suite)
    assert version.returncode == 0
    assert version.stdout.startswith("fleet ") and f"pytest {pytest.__version__}" in version.stdout
    wrong = _run([str(bare / "fleet"), "--no-such-option"], suite)
    assert wrong.returncode == 4
    assert "fleet: error: unrecognized arguments: --no-such-option" in wrong.stderr
    assert "pytest.main()" not in wrong.stderr
    ran = _run([str(bare / "fleet"), "--mt", "4", "-q", "-p", "no:cacheprovider"], suite)
    assert ran.returncode == 1 and "1 failed, 7 passed" in ran.stdout, ran.stdout + ran.stderr


@pytest.mark.parametrize("command", ["pytest", "fleet"])
def test_ray_without_the_extra_says_what_to_install(bare: Path, suite: Path, command: str) -> None:
    argv = [str(bare / "python"), "-m", "pytest"] if command == "pytest" else [str(bare / "fleet")]
    result = _run([*argv, "-p", "no:cacheprovider", "--ray", "local"], suite)
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        'ERROR: fleet: --ray runs tests on a Ray cluster, and Ray is not installed here: pip install "pytest-fleet[ray]"'
    ]
    assert not (suite / "workers.txt").exists()  # no test ran
