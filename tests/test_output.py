"""Each test's output, logs and warnings belong to that test, under concurrent writes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from conftest import outcomes, run

CHATTY = """
import logging, sys, time, pytest

@pytest.mark.parametrize("n", range(16))
def test_chatty(n):
    for i in range(30):
        print(f"out:{n}:{i}")
        sys.stderr.write(f"err:{n}:{i}\\n")
        logging.getLogger("app").warning(f"log:{n}:{i}")
        time.sleep(0.001)
    assert n % 2 == 0
"""


def own_tokens(text: str, kind: str) -> set[str]:
    return set(re.findall(rf"{kind}:(\d+):\d+", text))


def test_failure_sections_hold_only_their_own_output(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_chatty=CHATTY)
    result = run(pytester, "--mt", "8", "--group-unit", "function")
    assert outcomes(result) == {"passed": 8, "failed": 8}
    text = result.stdout.str()
    blocks = re.split(r"_{5,} test_chatty\[(\d+)\] _{5,}", text)[1:]
    assert len(blocks) == 16  # 8 failures, as (id, body) pairs
    for n, body in zip(blocks[::2], blocks[1::2]):
        body = body.split("short test summary")[0]
        for kind in ("out", "err", "log"):
            assert own_tokens(body, kind) == {n}, (n, kind)
        assert body.count(f"out:{n}:") == 30
        assert "Captured log call" in body


def test_junit_system_out_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_chatty=CHATTY)
    run(pytester, "--mt", "8", "--group-unit", "function", "--junitxml=out.xml",
        "-o", "junit_logging=all")
    cases = ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
    seen = set()
    for case in cases:
        n = re.search(r"\[(\d+)\]", case.get("name")).group(1)
        seen.add(n)
        out = "".join(e.text or "" for e in case.iter("system-out"))
        err = "".join(e.text or "" for e in case.iter("system-err"))
        assert own_tokens(out, "out") == {n} and own_tokens(err, "err") == {n}
        assert own_tokens(out, "log") == {n}
    assert len(seen) == 16


def test_capsys_and_caplog_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import logging, time, pytest
        @pytest.mark.parametrize("n", range(12))
        def test_capture(n, capsys, caplog):
            for i in range(20):
                print(f"cap:{n}")
                logging.getLogger("app").error(f"rec:{n}")
                time.sleep(0.002)
            out, err = capsys.readouterr()
            assert out == f"cap:{n}\\n" * 20
            assert [r.getMessage() for r in caplog.records] == [f"rec:{n}"] * 20
            print("after-read")
        """
    )
    result = run(pytester, "--mt", "6", "--group-unit", "function", "-rP")
    assert outcomes(result) == {"passed": 12}
    # What the test printed after readouterr() still reaches its report.
    assert result.stdout.str().count("after-read") == 12


def test_capsysbinary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_bytes(capsysbinary):
            print("hi")
            assert capsysbinary.readouterr().out == b"hi\\n"
        def test_disabled(capsys):
            with capsys.disabled():
                print("straight-through")
        """
    )
    result = run(pytester, "--mt", "2", "--group-unit", "function")
    assert outcomes(result) == {"passed": 2}
    assert "straight-through" in result.stdout.str()


def test_dash_s_prefixes_each_line_with_its_worker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time, pytest
        @pytest.mark.parametrize("n", range(6))
        def test_live(n, worker_id):
            for i in range(3):
                print(f"live {n} {i} from {worker_id}")
                time.sleep(0.01)
        """
    )
    result = run(pytester, "--mt", "3", "--group-unit", "function", "-s")
    assert result.ret == 0
    lines = [l for l in result.stdout.lines if "live " in l]
    assert len(lines) == 18
    for line in lines:
        match = re.search(r"\[(t\d)\] live \d \d from (t\d)$", line)
        assert match and match.group(1) == match.group(2), line


def test_verbose_names_the_worker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass\ndef test_b(): assert 0")
    result = run(pytester, "--mt", "2", "--group-unit", "function", "-v")
    result.stdout.re_match_lines([r".*::test_a \[t\d\] PASSED.*", r".*::test_b \[t\d\] FAILED.*"],
                                 consecutive=False)


def test_warnings_belong_to_their_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time, warnings, pytest
        @pytest.mark.parametrize("n", range(10))
        def test_warn(n):
            time.sleep(0.01)
            warnings.warn(f"warn-{n}", UserWarning)
        @pytest.mark.parametrize("n", range(10))
        def test_warns_block(n):
            with pytest.warns(UserWarning, match=f"^mine-{n}$"):
                time.sleep(0.01)
                warnings.warn(f"mine-{n}", UserWarning)
        @pytest.mark.filterwarnings("error::UserWarning")
        def test_error_filter():
            with pytest.raises(UserWarning):
                warnings.warn("raised")
        @pytest.mark.filterwarnings("ignore:quiet")
        def test_ignore_filter():
            warnings.warn("quiet please", UserWarning)
        def test_recwarn(recwarn):
            time.sleep(0.01)
            warnings.warn("recorded", UserWarning)
            assert [str(w.message) for w in recwarn] == ["recorded"]
        """
    )
    result = run(pytester, "--mt", "8", "--group-unit", "function")
    assert outcomes(result) == {"passed": 23, "warning": 10}
    text = result.stdout.str()
    for n in range(10):
        assert re.search(rf"test_warn\[{n}\]\n.*UserWarning: warn-{n}\n", text), n
    assert "quiet please" not in text and "mine-" not in text
