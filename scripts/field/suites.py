#!/usr/bin/env python3
"""Build environments for third-party test suites (suites.json) and compare
fleet with serial pytest on each (compare.py). Stdlib only.

For each suite: download its sdist from PyPI (once), extract it under
$FIELD/src/, make a venv $FIELD/venvs/NAME with the project (from the sdist),
its test dependencies, pytest and fleet (from $FLEET_SRC, reinstalled on every
run so it is that checkout's current state, non-editable), then run
compare.py in the suite's directory. Everything already built is reused.

    scripts/field/suites.py                       # build + compare every suite
    scripts/field/suites.py --only click --only toolz
    scripts/field/suites.py --build-only
    scripts/field/suites.py --only attrs --mode '--mt 4' --rerun-serial 1
    scripts/field/suites.py --list

Results: $FIELD/out/NAME/ (junit, logs, result.json) and
$FIELD/out/suites-summary.json. Exit 0 when every suite matched serial.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def sh(cmd: list[str], log: Path, **kw) -> None:
    with open(log, "a") as f:
        f.write("$ " + " ".join(map(str, cmd)) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    if r.returncode:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise RuntimeError(f"failed ({r.returncode}): {' '.join(map(str, cmd))}\n" + "\n".join(tail))


def project_name(req: str) -> tuple[str, str]:
    name, _, version = req.partition("==")
    return name, version


def fetch_sdist(suite: dict, field: Path) -> Path:
    """The extracted sdist directory (downloaded and extracted once)."""
    dl = field / "dl" / "sdists"
    dl.mkdir(parents=True, exist_ok=True)
    name, version = project_name(suite["sdist"])
    norm = {name.lower().replace("-", "_").replace(".", "_"), name.lower()}

    def find() -> Path | None:
        for p in sorted(dl.glob("*.tar.gz")) + sorted(dl.glob("*.zip")):
            stem = p.name[: -len(".tar.gz")] if p.name.endswith(".tar.gz") else p.stem
            pname, _, pver = stem.rpartition("-")
            if pname.lower().replace("-", "_").replace(".", "_") in norm and pver == version:
                return p
        return None

    archive = find()
    if archive is None:
        sh([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
            suite["sdist"], "-d", str(dl)], field / "dl" / "download.log")
        archive = find()
        if archive is None:
            raise RuntimeError(f"sdist for {suite['sdist']} not found in {dl}")
    dest = field / "src" / suite["name"]
    if not (dest / ".extracted").exists():
        shutil.rmtree(dest, ignore_errors=True)
        tmp = field / "src" / f".{suite['name']}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(archive) as t:
            t.extractall(tmp, filter="data")
        (top,) = list(tmp.iterdir())
        top.rename(dest)
        tmp.rmdir()
        (dest / ".extracted").write_text(archive.name + "\n")
    return dest


def build_venv(suite: dict, field: Path, python: str, fleet_src: Path, rebuild: bool) -> Path:
    venv = field / "venvs" / suite["name"]
    log = field / "venvs" / f"{suite['name']}.build.log"
    if rebuild:
        shutil.rmtree(venv, ignore_errors=True)
    archive = (field / "src" / suite["name"] / ".extracted").read_text().strip()
    archive_path = field / "dl" / "sdists" / archive
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    spec = json.dumps({"sdist": suite["sdist"], "deps": suite["deps"]}, sort_keys=True)
    built = venv / ".built"
    if not built.exists():
        shutil.rmtree(venv, ignore_errors=True)
        log.write_text("")
        print(f"[{suite['name']}] building {venv} (log {log})", file=sys.stderr, flush=True)
        sh([python, "-m", "venv", str(venv)], log)
        sh(pip + ["-U", "pip"], log)
        # the project from its sdist, its test deps, pytest (fleet's range) and fleet's deps
        sh(pip + [str(archive_path), *suite["deps"], "pytest>=8,<10", str(fleet_src)], log)
        built.write_text(spec)
    elif built.read_text() != spec:
        # suites.json changed for this suite: add what it now lists
        print(f"[{suite['name']}] updating {venv} (log {log})", file=sys.stderr, flush=True)
        sh(pip + [str(archive_path), *suite["deps"], "pytest>=8,<10"], log)
        built.write_text(spec)
    # fleet as the checkout is now (non-editable); setuptools builds in the
    # checkout and never empties build/lib, so modules deleted or moved since the
    # last install would be shipped again: build from a clean tree
    shutil.rmtree(fleet_src / "build", ignore_errors=True)
    sh(pip + ["--force-reinstall", "--no-deps", str(fleet_src)], log)
    return venv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="only this suite (repeatable)")
    ap.add_argument("--mode", action="append", dest="modes", metavar="ARGS", help="mode(s) for compare.py")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run (default: the suite's)")
    ap.add_argument("--rerun-serial", type=int, default=0, metavar="N")
    ap.add_argument("--fleet-cache", choices=["fresh", "shared"], default="fresh", help="see compare.py")
    ap.add_argument("--warm", action="store_true", help="see compare.py: each fleet mode run a second time")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--rebuild", action="store_true", help="remake the venvs")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--data", default=str(HERE / "suites.json"))
    ap.add_argument("--field", default=os.environ.get("FIELD", "/work/field"))
    ap.add_argument("--fleet-src", default=os.environ.get("FLEET_SRC"))
    ap.add_argument("--python", default=os.environ.get("PYTHON") or shutil.which("python3.11") or sys.executable)
    opts = ap.parse_args(argv)

    suites = json.loads(Path(opts.data).read_text())["suites"]
    if opts.list:
        for s in suites:
            print(f"{s['name']:16} {s['sdist']:24} {s['args']:40} {s['why']}")
        return 0
    if opts.only:
        unknown = set(opts.only) - {s["name"] for s in suites}
        if unknown:
            ap.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
        suites = [s for s in suites if s["name"] in opts.only]

    field = Path(opts.field).resolve()
    fleet_src = Path(opts.fleet_src or field / "fleet-src").resolve()
    if not (fleet_src / ".git").exists():
        subprocess.run(["git", "clone", "-q", str(REPO), str(fleet_src)], check=True)
    (field / "venvs").mkdir(parents=True, exist_ok=True)
    (field / "out").mkdir(parents=True, exist_ok=True)

    summary = {}
    status = 0
    for suite in suites:
        name = suite["name"]
        try:
            src = fetch_sdist(suite, field)
            venv = build_venv(suite, field, opts.python, fleet_src, opts.rebuild)
        except RuntimeError as exc:
            print(f"[{name}] BUILD FAILED: {exc}", file=sys.stderr)
            summary[name] = {"build_error": str(exc)}
            status = 1
            continue
        if opts.build_only:
            continue
        out = field / "out" / name
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, str(HERE / "compare.py"), "--suite", str(src), "--python", str(venv / "bin" / "python"),
               "--pytest-args", suite["args"], "--timeout", str(opts.timeout or suite.get("timeout", 600)),
               "--rerun-serial", str(opts.rerun_serial), "--out", str(out), "--name", name]
        for env in suite.get("env", []):
            cmd += ["--env", env]
        for pattern in suite.get("normalize_id", []):
            cmd += ["--normalize-id", pattern]
        for mode in opts.modes or []:
            cmd += ["--mode", mode]
        cmd += ["--fleet-cache", opts.fleet_cache] + (["--warm"] if opts.warm else [])
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode
        status = status or rc
        try:
            res = json.loads((out / "result.json").read_text())
            summary[name] = {
                "all_match": res["all_match"],
                "serial": {"wall": res["serial"]["wall"], "rc": res["serial"]["rc"],
                           "summary": res["serial"]["summary"]},
                "modes": {m["run"]["label"]: {"wall": m["run"]["wall"], "rc": m["run"]["rc"], "hang": m["run"]["hang"],
                                              "same": m["compare"]["same"], "differ": len(m["compare"]["differ"]),
                                              "missing": len(m["compare"]["missing"]),
                                              "extra": len(m["compare"]["extra"]),
                                              "duplicated": len(m["compare"]["duplicated"])}
                          for m in res["modes"]},
            }
        except (OSError, ValueError, KeyError) as exc:
            summary[name] = {"error": f"no result: {exc}"}
        print(flush=True)
    if not opts.build_only:
        path = field / "out" / ("suites-summary.json" if not opts.only else f"suites-summary-{'-'.join(opts.only)}.json")
        path.write_text(json.dumps(summary, indent=1))
        print(f"summary: {path}")
        for name, s in summary.items():
            print(f"  {name:16} {'match' if s.get('all_match') else 'DIFFER' if 'modes' in s else s}")
    return status


if __name__ == "__main__":
    sys.exit(main())
