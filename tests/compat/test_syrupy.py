"""syrupy: the snapshot report of a parallel run, and what --snapshot-update writes and deletes,
are the serial run's."""

from __future__ import annotations

import pytest

from .conftest import assert_counts, over_modes

pytest.importorskip("syrupy")

PLUGINS = ("syrupy",)

# Version 1 of the suite made these snapshots; the tests below are version 2:
# test_user_removed_later is gone (its snapshot is unused), test_about's output
# changed (a mismatch), test_user_new has no snapshot yet.
PRISTINE = {
    "__snapshots__/test_api.ambr": """
        # serializer version: 1
        # name: test_user_1
          dict({
            'id': 1,
            'name': 'user1',
            'roles': list([
              'reader',
            ]),
          })
        # ---
        # name: test_user_2
          dict({
            'id': 2,
            'name': 'user2',
            'roles': list([
              'reader',
            ]),
          })
        # ---
        # name: test_user_removed_later
          dict({
            'id': 3,
            'name': 'user3',
            'roles': list([
              'reader',
            ]),
          })
        # ---
    """,
    "__snapshots__/test_pages.ambr": """
        # serializer version: 1
        # name: test_about
          '<h1>about</h1>'
        # ---
        # name: test_home
          '<h1>home</h1>'
        # ---
    """,
}

FILES = {
    "pytest.ini": """
        [pytest]
        addopts = -p no:cacheprovider
    """,
    "test_api.py": """
        import time


        def render_user(uid):
            time.sleep(0.03)
            return {"id": uid, "name": f"user{uid}", "roles": ["reader"]}


        def test_user_1(snapshot):
            assert render_user(1) == snapshot


        def test_user_2(snapshot):
            assert render_user(2) == snapshot


        def test_user_new(snapshot):  # no snapshot yet
            assert render_user(4) == snapshot
    """,
    "test_pages.py": """
        import time


        def page(name):
            time.sleep(0.03)
            return f"<h1>{name}</h1>"


        def test_home(snapshot):
            assert page("home") == snapshot


        def test_about(snapshot):
            assert page("About us") == snapshot  # output changed
    """,
    **PRISTINE,
}

CASES = {
    # name: (arguments, counts line, the snapshot report's lines)
    "check": ((), "2 failed, 3 passed",
              ["2 snapshots failed. 3 snapshots passed. 1 snapshot unused."]),
    "update": (("--snapshot-update",), "5 passed",
               ["3 snapshots passed. 1 snapshot generated. 1 snapshot updated. 1 unused snapshot deleted.",
                "Deleted test_user_removed_later (__snapshots__/test_api.ambr)"]),
    "subset": (("-k", "test_user_1 or test_user_2 or test_home"), "3 passed, 2 deselected",
               ["3 snapshots passed."]),
}


def snapshot_report(run) -> list[str]:
    """The lines of syrupy's "snapshot report summary" section."""
    lines, inside = [], False
    for line in run.stdout.splitlines():
        if "snapshot report summary" in line:
            inside = True
        elif inside and (line.startswith("==") or line.startswith("--")):
            break
        elif inside and line.strip() and not line.startswith("Re-run pytest with"):
            lines.append(line.strip())
    return lines


def snapshot_files(run) -> dict[str, str]:
    return {p.relative_to(run.path).as_posix(): p.read_text()
            for p in sorted((run.path / "__snapshots__").glob("*.ambr"))}


def pristine(run) -> dict[str, str]:
    import textwrap
    return {name: textwrap.dedent(text).lstrip("\n") for name, text in PRISTINE.items()}


@over_modes
@pytest.mark.parametrize("case", list(CASES))
def test_syrupy(compat, mode: str, case: str) -> None:
    args, counts, report = CASES[case]
    got, serial = compat.against_serial(FILES, mode, *args, "-ra", key=case)
    assert_counts(got, counts)
    assert got.ret == (1 if case == "check" else 0), f"[{mode}] exit code {got.ret}\n{got.tail()}"
    assert snapshot_report(got) == report, f"[{mode}] syrupy reported {snapshot_report(got)}\n{got.tail()}"
    files = snapshot_files(got)
    if case == "update":
        # Written and deleted exactly as serial: test_user_new added, test_about
        # updated, test_user_removed_later deleted.
        assert files == snapshot_files(serial), (
            f"[{mode}] snapshot files after --snapshot-update differ from serial's: "
            f"{ {k: len(v) for k, v in files.items()} } vs { {k: len(v) for k, v in snapshot_files(serial).items()} }")
        names = [line for text in files.values() for line in text.splitlines() if line.startswith("# name:")]
        assert names == ["# name: test_user_1", "# name: test_user_2", "# name: test_user_new",
                         "# name: test_about", "# name: test_home"], names
        assert "'<h1>About us</h1>'" in files["__snapshots__/test_pages.ambr"]
    else:
        assert files == pristine(got), f"[{mode}] a {case} run changed the snapshot files: {sorted(files)}"
