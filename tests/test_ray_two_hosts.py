"""``--ray`` across two hosts that share nothing but a network.

Host A (the Ray head and the controller) and host B (a second Ray node) are
two Linux network namespaces joined by a veth pair, 10.0.0.1 and 10.0.0.2;
host B also has a mount namespace with its own ``/tmp``, so the suite (under
pytest's temporary directory) does not exist there: B sees only what Ray
ships. Needs root (CI runs as root) and Ray; skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ray_authentication

pytest.importorskip("ray")
if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("unshare"):
    pytest.skip("needs root, ip and unshare (network and mount namespaces)", allow_module_level=True)

RAY = str(Path(sys.executable).with_name("ray"))
HOST_A, HOST_B = "fleet-host-a", "fleet-host-b"
IP_A, IP_B = "10.0.0.1", "10.0.0.2"
PORT = 6379


def _sh(*command: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=180, env=env)


def _remove_hosts() -> None:
    for host in (HOST_A, HOST_B):
        subprocess.run(["ip", "netns", "del", host], capture_output=True)


@pytest.fixture(scope="module")
def hosts():
    if Path(RAY).resolve().is_relative_to("/tmp"):
        pytest.skip(f"the second host gets its own /tmp, which would hide Ray itself ({RAY})")
    _remove_hosts()
    with ray_authentication():
        env = dict(os.environ)
        try:
            try:
                _sh("ip", "netns", "add", HOST_A)
                _sh("ip", "netns", "add", HOST_B)
            except subprocess.CalledProcessError as error:
                pytest.skip(f"cannot make network namespaces here: {error.stderr.decode().strip()}")
            _sh("ip", "link", "add", "fleet-va", "netns", HOST_A, "type", "veth", "peer", "name", "fleet-vb",
                "netns", HOST_B)
            for host, device, ip in ((HOST_A, "fleet-va", IP_A), (HOST_B, "fleet-vb", IP_B)):
                _sh("ip", "-n", host, "addr", "add", f"{ip}/24", "dev", device)
                _sh("ip", "-n", host, "link", "set", device, "up")
                _sh("ip", "-n", host, "link", "set", "lo", "up")
            start = [RAY, "start", "--num-cpus=1", "--disable-usage-stats"]
            _sh("ip", "netns", "exec", HOST_A, *start, "--head", f"--port={PORT}", f"--node-ip-address={IP_A}",
                "--include-dashboard=false", env=env)
            # host B: its own network and its own /tmp (pytest's tmp_path, and so the suite, is not there)
            joined = " ".join([*start, f"--address={IP_A}:{PORT}", f"--node-ip-address={IP_B}"])
            _sh("ip", "netns", "exec", HOST_B, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                f"mount -t tmpfs fleet-host-b /tmp && {joined}", env=env)
            yield f"{IP_A}:{PORT}"
        finally:
            subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
            _remove_hosts()


SUITE = '''
import os, time
import pytest

SUITE = {suite!r}

@pytest.fixture(scope="session")
def shared():
    return {{"made in": os.getcwd()}}

@pytest.mark.parametrize("i", range(12))
def test_on_some_host(i, shared, record_property):
    record_property("suite_visible", os.path.exists(SUITE))
    record_property("node", os.environ.get("FLEET_NODE"))
    assert os.path.exists("conftest.py") and os.path.exists("test_hosts.py")  # the shipped copy
    assert shared["made in"]
    time.sleep(0.5)
'''


def test_the_second_host_sees_only_what_ray_ships(hosts: str, pytester: pytest.Pytester) -> None:
    pytester.makeconftest("")
    pytester.makepyfile(test_hosts=SUITE.format(suite=str(pytester.path)))
    result = pytester.run(
        "ip", "netns", "exec", HOST_A, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v",
        "--ray", hosts, "--mp", "2", "--group-unit", "function", "--junitxml", "junit.xml", timeout=300,
    )
    output = result.stdout.str()
    assert result.ret == 0, output
    result.stdout.fnmatch_lines([f"*[[]r?@{IP_B}[]] PASSED*"])  # tests ran on host B
    cases = list(ET.parse(pytester.path / "junit.xml").getroot().iter("testcase"))
    assert len(cases) == 12
    visible = {}
    for case in cases:
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        visible.setdefault(properties["node"], set()).add(properties["suite_visible"])
    assert len(visible) == 2, visible  # two nodes
    assert sorted(map(sorted, visible.values())) == [["False"], ["True"]], visible  # B: only the shipped copy
