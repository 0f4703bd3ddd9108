#!/usr/bin/env python3
"""Compare fleet's per-test outcomes with a serial pytest run (stdlib only).

Runs ``python -m pytest ARGS --junitxml=...`` once serially and once per mode
(a mode is a string of extra arguments such as ``--mp 2 --mt 4``), in the suite
directory, each bounded by a timeout (the whole process group is killed and the
run is reported as HANG). Then compares every mode with serial per test id
(junit classname::name) and prints a table, the first differences, and writes
everything to a JSON file.

How pytest's junit shows each outcome (pytest 8, both junit families):

    passed           <testcase> with no failure/error/skipped child
    failed           <failure message="...">
    error(setup)     <error message='failed on setup with "..."'>
    error(teardown)  <error message='failed on teardown with "..."'>; on a
                     passing test it is the only child of its testcase; after a
                     failed call pytest writes a second <testcase> with the same
                     name (so an id can legitimately appear twice)
    error(collection) <error message="collection failure"> (classname "", name = module)
    skipped          <skipped type="pytest.skip">
    xfailed          <skipped type="pytest.xfail">
    xpassed(strict)  <failure message="[XPASS(strict)] ...">
    xpassed          non-strict:
                     indistinguishable from passed in junit, so compare.py adds
                     -rX and reads the XPASS lines of the short test summary.

Duplicates: an id may have several <testcase> entries (above); a mode with
more entries for an id than serial counts it as "dup". The number of
<testcase> elements is shown as "junit".

An id whose entries are several (failed call + teardown error) gets the outcome
"failed+error(teardown)" (entries sorted, so their order does not matter).

Exit status: 0 when every mode matches serial, 1 otherwise, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

DEFAULT_MODES = ["serial", "--mp 2", "--mt auto", "--mp 2 --mt 4"]
SUMMARY_RE = re.compile(r"^=+ (.*\b(passed|failed|error|errors|skipped|deselected|xfailed|xpassed|no tests ran)\b.*) =+$")


# --- junit parsing ---------------------------------------------------------


def mangle_nodeid(nodeid: str) -> str:
    """pytest's junitxml mangle_test_address: node id -> 'classname::name'."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = names[0].replace("/", ".")
    names[0] = re.sub(r"\.py$", "", names[0])
    names[-1] += bracket + params
    return ".".join(names[:-1]) + "::" + names[-1]


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:240]
    return ""


def error_kind(message: str) -> str:
    for when in ("setup", "teardown", "call"):
        if message.startswith(f"failed on {when}"):
            return f"error({when})"
    if message.startswith("collection failure"):
        return "error(collection)"
    return "error"


def entry_outcome(case: ET.Element) -> tuple[str, str, str]:
    """(outcome, message first line, text head) of one <testcase>."""
    for child in case:
        tag = child.tag
        msg = child.get("message") or ""
        text = child.text or ""
        if tag == "failure":
            if msg.startswith("[XPASS(strict)]"):
                return "xpassed(strict)", first_line(msg), text[:3000]
            return "failed", first_line(msg) or first_line(text), text[:3000]
        if tag == "error":
            return error_kind(msg), first_line(msg) or first_line(text), text[:3000]
        if tag == "skipped":
            if msg == "xfail-marked test passes unexpectedly":  # legacy path of append_failure
                return "xpassed", first_line(msg), ""
            if child.get("type") == "pytest.xfail":
                return "xfailed", first_line(msg), ""
            return "skipped", first_line(msg), ""
    return "passed", "", ""


def parse_junit(path: Path, normalize: list[re.Pattern] = ()) -> tuple[dict, int, str | None]:
    """{id: [(outcome, message, text), ...]}, number of <testcase>s, parse error.

    ``normalize``: patterns replaced by ``<*>`` in ids (ids that embed a time,
    a random value or an address differ from run to run whatever the runner)."""
    tests: dict[str, list] = collections.defaultdict(list)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return {}, 0, f"{type(exc).__name__}: {exc}"
    count = 0
    for case in root.iter("testcase"):
        count += 1
        tid = f"{case.get('classname', '')}::{case.get('name', '')}"
        for pattern in normalize:
            tid = pattern.sub("<*>", tid)
        tests[tid].append(entry_outcome(case))
    return dict(tests), count, None


def xpass_ids(output: str, normalize: list[re.Pattern] = ()) -> set[str]:
    """Ids of the XPASS lines in pytest's short test summary (-rX)."""
    found = set()
    for line in output.splitlines():
        if line.startswith("XPASS "):
            rest = line[len("XPASS "):]
            nodeid = rest.split(" - ", 1)[0].strip()
            nodeid = nodeid.split(" ", 1)[0] if "[" not in nodeid else nodeid
            tid = mangle_nodeid(nodeid)
            for pattern in normalize:
                tid = pattern.sub("<*>", tid)
            found.add(tid)
    return found


def outcomes_of(tests: dict, xpassed: set[str]) -> dict[str, dict]:
    out = {}
    for tid, entries in tests.items():
        names = []
        for outcome, _msg, _text in entries:
            if outcome == "passed" and tid in xpassed:
                outcome = "xpassed"
            names.append(outcome)
        msgs = [m for _o, m, _t in entries if m]
        out[tid] = {
            "outcome": "+".join(sorted(names)),
            "entries": len(entries),
            "message": msgs[0] if msgs else "",
            "text": next((t for _o, _m, t in entries if t), ""),
        }
    return out


# --- running ---------------------------------------------------------------


def kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_one(label: str, index: int, args: list[str], opts, outdir: Path, cache: Path | None = None) -> dict:
    slug = f"{index:02d}-" + (re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_") or "serial")
    junit = outdir / f"{slug}.xml"
    log = outdir / f"{slug}.log"
    junit.unlink(missing_ok=True)
    cmd = [opts.python, "-m", "pytest", *opts.pytest_args, *args, f"--junitxml={junit}", "-rX"]
    if opts.fleet_cache == "fresh":
        # pytest's cache (and fleet's learned placement in it) per run, not the
        # suite's .pytest_cache shared by all runs (which makes each mode depend
        # on what the modes before it learned)
        cache = cache or outdir / f"{slug}.cache"
        if cache.name == f"{slug}.cache":
            import shutil
            shutil.rmtree(cache, ignore_errors=True)
        cmd += ["-o", f"cache_dir={cache}"]
    env = dict(os.environ)
    for var in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST"):
        env.pop(var, None)
    env.update(dict(kv.split("=", 1) for kv in opts.env))
    start = time.monotonic()
    hang = False
    with open(log, "w") as logf:
        logf.write("$ " + shlex.join(cmd) + "\n")
        logf.flush()
        proc = subprocess.Popen(cmd, cwd=opts.suite, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(timeout=opts.timeout)
        except subprocess.TimeoutExpired:
            hang = True
            kill_group(proc)
            rc = proc.returncode
        except BaseException:
            kill_group(proc)
            raise
        # stray children (forked workers) that outlived their parent
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    wall = time.monotonic() - start
    output = log.read_text(errors="replace")
    summary = ""
    for line in output.splitlines():
        m = SUMMARY_RE.match(line.strip())
        if m:
            summary = m.group(1)
    norm = [re.compile(p) for p in opts.normalize_id]
    tests, count, parse_error = parse_junit(junit, norm) if junit.exists() else ({}, 0, "no junit file")
    tail = [line for line in output.splitlines() if line.strip()][-12:]
    return {
        "label": label,
        "args": args,
        "cmd": shlex.join(cmd),
        "log": str(log),
        "junit": str(junit),
        "wall": round(wall, 2),
        "rc": rc,
        "hang": hang,
        "junit_testcases": count,
        "junit_error": parse_error,
        "summary": summary,
        "tail": tail if (hang or parse_error or not summary) else [],
        "tests": outcomes_of(tests, xpass_ids(output, norm)),
    }


# --- comparing -------------------------------------------------------------


def same_outcome(a: str, b: str, a_summary: str, b_summary: str) -> bool:
    """Equal outcomes; xpassed is known only from the terminal summary, so when a
    run's terminal output was lost (no summary line) its "passed" may be an XPASS."""
    if a == b:
        return True
    pair = {a, b}
    if pair == {"passed", "xpassed"}:
        lost = b_summary if b == "passed" else a_summary
        return not lost
    return False


def compare(serial: dict, other: dict, flaky: set[str]) -> dict:
    s, o = serial["tests"], other["tests"]
    same, differ, missing, extra, dup, flaky_diff = [], [], [], [], [], []
    for tid, srec in s.items():
        orec = o.get(tid)
        if orec is None:
            missing.append(tid)
            continue
        if orec["entries"] > srec["entries"]:
            dup.append(tid)
        if same_outcome(srec["outcome"], orec["outcome"], serial["summary"], other["summary"]):
            same.append(tid)
        elif tid in flaky:
            flaky_diff.append(tid)
        else:
            differ.append(tid)
    for tid in o:
        if tid not in s:
            extra.append(tid)
    return {
        "same": len(same),
        "differ": differ,
        "missing": missing,
        "extra": extra,
        "duplicated": dup,
        "flaky_serial": flaky_diff,
        "match": not (differ or missing or extra or dup or other["hang"])
        and other["junit_error"] is None
        and other["rc"] == serial["rc"],
    }


def fmt_table(serial: dict, rows: list[tuple[dict, dict]]) -> str:
    head = ["mode", "wall s", "x serial", "rc", "junit", "same", "differ", "missing", "extra/dup", "flaky", "HANG"]
    lines = [head]
    lines.append(["serial", f"{serial['wall']:.1f}", "1.00", str(serial["rc"]), str(serial["junit_testcases"]),
                  str(len(serial["tests"])), "-", "-", "-", "-", "HANG" if serial["hang"] else ""])
    for run, cmp in rows:
        ratio = run["wall"] / serial["wall"] if serial["wall"] else 0
        lines.append([
            run["label"], f"{run['wall']:.1f}", f"{ratio:.2f}", f"{run['rc']} ({serial['rc']})",
            str(run["junit_testcases"]), str(cmp["same"]), str(len(cmp["differ"])), str(len(cmp["missing"])),
            f"{len(cmp['extra'])}/{len(cmp['duplicated'])}", str(len(cmp["flaky_serial"])),
            "HANG" if run["hang"] else "",
        ])
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)


def fmt_diffs(serial: dict, run: dict, cmp: dict, limit: int) -> list[str]:
    out = []
    items = [("differ", t) for t in cmp["differ"]] + [("missing", t) for t in cmp["missing"]] + \
            [("extra", t) for t in cmp["extra"]] + [("dup", t) for t in cmp["duplicated"] if t not in cmp["differ"]]
    for kind, tid in items[:limit]:
        srec = serial["tests"].get(tid)
        orec = run["tests"].get(tid)
        s_out = srec["outcome"] if srec else "-"
        o_out = orec["outcome"] if orec else "-"
        out.append(f"  [{kind}] {tid}")
        out.append(f"      serial: {s_out}" + (f" | {srec['message']}" if srec and srec["message"] else ""))
        out.append(f"      {run['label']}: {o_out}" + (f" | {orec['message']}" if orec and orec["message"] else ""))
    if len(items) > limit:
        out.append(f"  ... {len(items) - limit} more (see JSON)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", required=True, help="directory pytest runs in (cwd)")
    ap.add_argument("--python", required=True, help="the venv's python (with pytest and fleet installed)")
    ap.add_argument("--pytest-args", default="", help="pytest arguments shared by all runs, one shell-quoted string "
                    "(e.g. 'testing/ -p no:cacheprovider')")
    ap.add_argument("--mode", action="append", dest="modes", metavar="ARGS",
                    help="a mode: extra pytest args, or 'serial' (repeatable; default: %s)" %
                    ", ".join(repr(m) for m in DEFAULT_MODES))
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run before it is killed as HANG")
    ap.add_argument("--rerun-serial", type=int, default=0, metavar="N",
                    help="run serial N more times; tests whose serial outcome varies are flaky, not blamed on modes")
    ap.add_argument("--normalize-id", action="append", default=[], metavar="REGEX",
                    help="replace REGEX by <*> in test ids (ids embedding times or random values; repeatable)")
    ap.add_argument("--fleet-cache", choices=["fresh", "shared"], default="fresh",
                    help="fresh (default): every run gets an empty pytest cache of its own (-o cache_dir), so no "
                    "mode sees what fleet learned in another (thread-unsafe tests remembered); shared: the suite's "
                    ".pytest_cache, as before")
    ap.add_argument("--warm", action="store_true",
                    help="with --fleet-cache fresh: run every fleet mode a second time with the cache its first run "
                    "left (fleet's second run of a suite), shown as '<mode> #2'")
    ap.add_argument("--env", action="append", default=[], metavar="VAR=VALUE", help="extra environment variable")
    ap.add_argument("--out", default=None, help="output directory (junit, logs, result JSON); "
                    "default: <suite>/.field-compare")
    ap.add_argument("--json", default=None, help="result JSON path (default: <out>/result.json)")
    ap.add_argument("--name", default=None, help="suite name for the report (default: suite dir name)")
    ap.add_argument("--show", type=int, default=15, help="differences shown per mode")
    opts = ap.parse_args(argv)
    opts.suite = str(Path(opts.suite).resolve())
    opts.pytest_args = shlex.split(opts.pytest_args)
    modes = opts.modes or list(DEFAULT_MODES)
    if "serial" in modes:
        modes.remove("serial")
    outdir = Path(opts.out or Path(opts.suite) / ".field-compare").resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    name = opts.name or Path(opts.suite).name

    def progress(msg: str) -> None:
        print(f"[{name}] {msg}", file=sys.stderr, flush=True)

    progress(f"serial: {shlex.join(opts.pytest_args)}")
    serial = run_one("serial", 0, [], opts, outdir)
    progress(f"serial: {serial['wall']:.1f}s rc={serial['rc']} {serial['summary']}" + (" HANG" if serial["hang"] else ""))

    reruns, flaky = [], set()
    for i in range(opts.rerun_serial):
        progress(f"serial rerun {i + 1}")
        again = run_one(f"serial#{i + 2}", len(reruns) + 1, [], opts, outdir)
        progress(f"serial rerun {i + 1}: {again['wall']:.1f}s rc={again['rc']} {again['summary']}")
        reruns.append(again)
        for tid in set(serial["tests"]) | set(again["tests"]):
            a, b = serial["tests"].get(tid), again["tests"].get(tid)
            if not (a and b and same_outcome(a["outcome"], b["outcome"], serial["summary"], again["summary"])):
                flaky.add(tid)

    rows = []
    base = 1 + len(reruns)
    for i, mode in enumerate(modes):
        args = shlex.split(mode)
        progress(f"{mode}")
        run = run_one(mode, base + i, args, opts, outdir)
        cmp = compare(serial, run, flaky)
        progress(f"{mode}: {run['wall']:.1f}s rc={run['rc']} {run['summary']} differ={len(cmp['differ'])} "
                 f"missing={len(cmp['missing'])}" + (" HANG" if run["hang"] else ""))
        rows.append((run, cmp))
        if opts.warm and opts.fleet_cache == "fresh":
            slug = f"{base + i:02d}-" + (re.sub(r"[^A-Za-z0-9]+", "_", mode).strip("_") or "serial")
            progress(f"{mode} #2 (warm cache)")
            run2 = run_one(f"{mode} #2", base + i + 50, args, opts, outdir, cache=outdir / f"{slug}.cache")
            cmp2 = compare(serial, run2, flaky)
            progress(f"{mode} #2: {run2['wall']:.1f}s rc={run2['rc']} {run2['summary']} differ={len(cmp2['differ'])} "
                     f"missing={len(cmp2['missing'])}" + (" HANG" if run2["hang"] else ""))
            rows.append((run2, cmp2))

    print(f"== {name}: {shlex.join(opts.pytest_args)} (serial: {serial['summary'] or 'no summary'})")
    if serial["hang"] or serial["junit_error"]:
        print(f"   serial run unusable: hang={serial['hang']} junit={serial['junit_error']}")
    if flaky:
        print(f"   {len(flaky)} tests flaky serially (ignored): {', '.join(sorted(flaky)[:5])}")
    print(fmt_table(serial, rows))
    for run, cmp in rows:
        if run["hang"] or run["junit_error"] or (not run["summary"] and run["tail"]):
            print(f"-- {run['label']}: hang={run['hang']} junit={run['junit_error']}; output tail:")
            for line in run["tail"]:
                print("   | " + line[:200])
        lines = fmt_diffs(serial, run, cmp, opts.show)
        if lines:
            print(f"-- {run['label']} vs serial ({run['summary'] or 'no summary'}):")
            print("\n".join(lines))

    def slim(run: dict, keep: set[str] | None) -> dict:
        # full outcome map, message/text kept only where it matters
        tests = {}
        for tid, rec in run["tests"].items():
            r = {"outcome": rec["outcome"], "entries": rec["entries"]}
            if rec["message"]:
                r["message"] = rec["message"]
            if keep is None or tid in keep:
                if rec["text"]:
                    r["text"] = rec["text"]
            tests[tid] = r
        return {**run, "tests": tests}

    interesting = set()
    for _run, cmp in rows:
        interesting |= set(cmp["differ"]) | set(cmp["missing"]) | set(cmp["duplicated"])
    result = {
        "name": name,
        "suite": opts.suite,
        "python": opts.python,
        "pytest_args": opts.pytest_args,
        "timeout": opts.timeout,
        "loadavg_end": os.getloadavg(),
        "flaky_serial": sorted(flaky),
        "serial": slim(serial, interesting),
        "serial_reruns": [slim(r, set()) for r in reruns],
        "modes": [{"run": slim(run, None), "compare": cmp} for run, cmp in rows],
        "all_match": all(cmp["match"] for _r, cmp in rows) and not serial["hang"],
    }
    json_path = Path(opts.json) if opts.json else outdir / "result.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1))
    print(f"   JSON: {json_path}")
    return 0 if result["all_match"] else 1


if __name__ == "__main__":
    sys.exit(main())
