"""Bad input: one line naming the problem, exit code 4, before any test runs.

One table: each row writes its files into a small project, runs one command
(plain pytest, the ``fleet`` command, or a ``run.py`` calling ``main_run``)
in a subprocess, and checks the exit code, the one error line, that nothing
printed a traceback or an INTERNALERROR, and that no test ran (every test of
the project writes ``RAN`` when it runs).
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import pytest

from conftest import run

INI = "[pytest]\nmarkers =\n    m1\n    m2\n"

CONFTEST = """
import os, pytest
@pytest.fixture(autouse=True)
def _ran(request):
    with open(os.path.join(os.path.dirname(__file__), "RAN"), "a") as f:
        f.write(request.node.nodeid + "\\n")
"""

TESTS = """
import pytest
@pytest.mark.m1
def test_m1(): pass
@pytest.mark.m2
def test_m2(): pass
def test_plain(): pass
"""

CONFIG = "env: mock\nmock:\n  host: http://127.0.0.1:1\n"
USES_ENV = "def test_env(fleet_env): pass\n"

STRATEGY = "target: [hpc]\nmarks:\n  hpc: [m1, m2]\n"

TWO_HOOKS = """
from fleet import hook
@hook
def a():
    print("A before")
    yield
    print("A after")
@hook
def b():
{body}
"""

API = """
import sys
from fleet import main_run, threads_run, processes_run
try:
    code = {call}
except (TypeError, ValueError) as error:
    sys.stderr.write(f"{{type(error).__name__}}: {{error}}\\n")
    sys.exit(99)
sys.exit(code)
"""

NO_CACHE = 'pytest_args=["-p", "no:cacheprovider"]'


@dataclass
class Row:
    id: str
    args: list[str]  # for "python": the call run.py makes
    error: str  # the one line on stderr (fnmatch, [ and ] literal)
    files: dict[str, str] = field(default_factory=dict)
    command: str = "pytest"  # or "fleet", "python"
    code: int = 4
    env: dict[str, str] = field(default_factory=dict)
    stdout: list[str] = field(default_factory=list)  # lines (fnmatch) that must also be printed
    dirs: list[str] = field(default_factory=list)


def mark_test(mark: str, extra: str = "") -> dict[str, str]:
    return {"test_marked.py": f"import pytest\n{extra}@pytest.mark.{mark}\ndef test_marked(): pass\n"}


def hooks(body: str) -> dict[str, str]:
    return {"hooks.py": textwrap.dedent(body)}


def two_hooks(body: str) -> dict[str, str]:
    return {"hooks.py": TWO_HOOKS.format(body=textwrap.indent(textwrap.dedent(body), "    "))}


def api(call: str, error: str, code: int = 99, **files: str) -> dict:
    return dict(args=[call], error=error, code=code, command="python", files=files)


ROWS = [
    # --mt / --mp / -n: counts
    Row("mt-zero", ["--mt=0"], "ERROR: fleet: --mt takes a positive integer or 'auto', not '0'"),
    Row("mt-empty", ["--mt="], "ERROR: fleet: --mt takes a positive integer or 'auto', not ''"),
    Row("mt-fraction", ["--mt", "2.5"], "ERROR: fleet: --mt takes a positive integer or 'auto', not '2.5'"),
    Row("mt-missing-path", ["--mt", "nosuchdir"], "ERROR: file or directory not found: nosuchdir"),
    Row("mp-negative", ["--mp", "-3"], "ERROR: fleet: --mp takes a positive integer or 'auto', not '-3'"),
    Row("mp-word", ["--mp=two"], "ERROR: fleet: --mp takes a positive integer or 'auto', not 'two'"),
    Row("mp-and-n", ["-p", "no:xdist", "--mp", "2", "-n", "4"],
        "ERROR: fleet: --mp and -n both give the number of worker processes; use one of them"),
    Row("n-negative", ["-p", "no:xdist", "-n", "-1"], "ERROR: fleet: -n takes a positive integer or 'auto', not '-1'"),
    Row("n-empty", ["-p", "no:xdist", "-n", ""], "ERROR: fleet: -n takes a positive integer or 'auto', not ''"),
    Row("max-worker-restart-word", ["--mp", "2", "--max-worker-restart", "x"],
        "ERROR: fleet: --max-worker-restart takes a whole number, not 'x'"),
    Row("max-worker-restart-threads", ["--mt", "2", "--max-worker-restart", "3"],
        "ERROR: fleet: --max-worker-restart: replaces crashed worker processes; it needs --mp (or -n)"),
    Row("max-worker-restart-serial", ["-p", "no:xdist", "--max-worker-restart", "3"],
        "ERROR: fleet: --max-worker-restart: replaces crashed worker processes; it needs --mp (or -n)"),
    # --dist / --group-unit / ini group_unit
    Row("dist-each-xdist", ["--mt", "2", "--dist", "each"],
        "ERROR: fleet: --dist each (every test on every worker) is not supported with --mt/--mp"),
    Row("dist-each", ["-p", "no:xdist", "--dist", "each"],
        "ERROR: fleet: --dist each (every test on every worker) is not supported"),
    Row("dist-unknown", ["-p", "no:xdist", "--dist", "bogus"],
        "ERROR: fleet: --dist takes load, loadfile, loadscope, loadgroup, worksteal or no, not 'bogus'"),
    Row("dist-disagrees", ["--mt", "2", "--dist", "loadfile", "--group-unit", "class"],
        "ERROR: fleet: --group-unit class and --dist loadfile (--group-unit module) disagree; use one of them"),
    Row("group-unit-unknown", ["--group-unit", "package"],
        "ERROR: fleet: --group-unit takes module, class or function, not 'package'"),
    Row("group-unit-empty", ["--group-unit="], "ERROR: fleet: --group-unit needs module, class or function, not ''"),
    Row("ini-group-unit", [], "ERROR: fleet: group_unit = 'package' in the ini file is not one of module, class, function",
        files={"pytest.ini": INI + "group_unit = package\n"}),
    Row("ini-group-units-disagree", [],
        "ERROR: fleet: group_unit = class and group-unit = module in the ini file disagree; keep one of them",
        files={"pytest.ini": INI + "group_unit = class\ngroup-unit = module\n"}),
    Row("ini-thread-safe-fixtures", [],
        "ERROR: fleet: thread_safe_fixtures in the ini file: 'monkey patch' is not a fixture name",
        files={"pytest.ini": INI + "thread_safe_fixtures =\n    monkey patch\n"}),
    # timeouts: option, ini, marks
    Row("timeout-nan", ["--test-timeout", "nan"],
        "ERROR: fleet: --test-timeout takes a number of seconds (0: no limit), not 'nan'"),
    Row("timeout-word", ["--test-timeout", "soon"],
        "ERROR: fleet: --test-timeout takes a number of seconds (0: no limit), not 'soon'"),
    Row("timeout-negative", ["--test-timeout", "-1"], "ERROR: fleet: --test-timeout must be 0 or more seconds, not -1"),
    Row("ini-timeout-nan", [], "ERROR: fleet: test_timeout = 'nan' in the ini file is not a number of seconds",
        files={"pytest.ini": INI + "test_timeout = nan\n"}),
    Row("ini-timeout-negative", [], "ERROR: fleet: test_timeout = '-5' in the ini file must be 0 or more seconds",
        files={"pytest.ini": INI + "test_timeout = -5\n"}),
    Row("ini-timeout-overridden", ["--test-timeout", "3"],
        "ERROR: fleet: test_timeout = 'soon' in the ini file is not a number of seconds",
        files={"pytest.ini": INI + "test_timeout = soon\n"}),
    Row("mark-timeout-word", [],
        "ERROR: fleet: test_marked.py::test_marked: @pytest.mark.test_timeout('abc'): 'abc' is not a number "
        "of seconds (0: no limit)", files=mark_test("test_timeout('abc')")),
    Row("mark-timeout-negative", ["--mt", "2"],
        "ERROR: fleet: test_marked.py::test_marked: @pytest.mark.test_timeout(-1): -1 must be 0 or more "
        "seconds (0: no limit)", files=mark_test("test_timeout(-1)")),
    Row("mark-timeout-nan", [],
        "ERROR: fleet: test_marked.py::test_marked: @pytest.mark.test_timeout(nan): nan is not a number of "
        "seconds (0: no limit)", files=mark_test("test_timeout(float('nan'))")),
    Row("mark-timeout-none", [],
        "ERROR: fleet: test_marked.py::test_marked: @pytest.mark.test_timeout(): takes one number of seconds "
        "(0: no limit)", files=mark_test("test_timeout()")),
    Row("mark-timeout-keyword", [],
        "ERROR: fleet: test_marked.py::test_marked: @pytest.mark.test_timeout(secs=3): unknown argument secs; "
        "it takes seconds", files=mark_test("test_timeout(secs=3)")),
    Row("mark-timeout-bool", ["--mp", "1"],
        "ERROR: fleet: test_marked.py::test_marked: @pytest.mark.test_timeout(True): True is not a number of "
        "seconds (0: no limit)", files=mark_test("test_timeout(True)")),
    Row("mark-timeout-module", [],
        "ERROR: fleet: test_marked.py::test_marked: @pytest.mark.test_timeout('1m'): '1m' is not a number of "
        "seconds (0: no limit)",
        files={"test_marked.py": "import pytest\npytestmark = pytest.mark.test_timeout('1m')\n"
                                 "def test_marked(): pass\n"}),
    Row("mark-group-number", ["--mt", "2"],
        "ERROR: fleet: test_marked.py::test_marked: @pytest.mark.group(1): 1 is not a group name (a non-empty "
        "string)", files=mark_test("group(1)")),
    Row("mark-xdist-group-no-name", ["--mt", "2"],
        "ERROR: fleet: test_marked.py::test_marked: @pytest.mark.xdist_group(): takes one group name",
        files=mark_test("xdist_group()")),
    Row("mark-exclusive-argument", ["--mt", "2"],
        "ERROR: fleet: test_marked.py::test_marked: @pytest.mark.exclusive(True): takes no arguments",
        files=mark_test("exclusive(True)")),
    # --slow-after, --timeline, FLEET_START_METHOD
    Row("slow-after-zero", ["--mt", "2", "--slow-after", "0"],
        "ERROR: fleet: --slow-after takes a number of seconds above 0, not 0"),
    Row("slow-after-nan", ["--slow-after", "nan"], "ERROR: fleet: --slow-after takes a number of seconds above 0, not nan"),
    Row("slow-after-word", ["--slow-after", "soon"],
        "ERROR: fleet: --slow-after takes a number of seconds above 0, not 'soon'"),
    Row("timeline-directory", ["--mt", "2", "--timeline", "out.json"],
        "ERROR: fleet: --timeline out.json: is a directory; give a file name", dirs=["out.json"]),
    Row("timeline-serial", ["--timeline", "run.json"],
        "ERROR: fleet: --timeline run.json: records what each worker ran; it needs --mt or --mp"),
    Row("timeline-empty", ["--mt", "2", "--timeline="],
        "ERROR: fleet: --timeline needs a file name, FILE.json or FILE.html, not ''"),
    Row("timeline-missing-directory", ["--mt", "2", "--timeline", "missing/run.json"],
        "ERROR: fleet: --timeline missing/run.json: directory 'missing' does not exist"),
    Row("timeline-suffix", ["--mp", "1", "--timeline", "run.txt"],
        "ERROR: fleet: --timeline writes FILE.json (a Chrome/Perfetto trace) or FILE.html, not 'run.txt'"),
    Row("timeline-parent-is-file", ["--mt", "2", "--timeline", "test_a.py/run.json"],
        "ERROR: fleet: --timeline test_a.py/run.json: 'test_a.py' is not a directory"),
    Row("start-method", [], "ERROR: fleet: FLEET_START_METHOD='bogus': expected fork or spawn (or unset: fleet decides)",
        env={"FLEET_START_METHOD": "bogus"}),
    # --dist-mark
    Row("dist-mark-empty", ["--dist-mark="], "ERROR: fleet: --dist-mark '': no mark name given"),
    Row("dist-mark-blank", ["--dist-mark", " "], "ERROR: fleet: --dist-mark ' ': no mark name given"),
    Row("dist-mark-comma", ["--dist-mark", "m1,m2"],
        "ERROR: fleet: --dist-mark m1,m2: not a mark name (separate marks with spaces)"),
    Row("dist-mark-option-like", ["--dist-mark=-m1"], "ERROR: fleet: --dist-mark -m1: not a mark name"),
    Row("dist-mark-selects-nothing", ["--dist-mark", "m1", "nosuchmark"],
        "ERROR: fleet: --dist-mark nosuchmark: no collected test has this mark"),
    Row("dist-mark-repeated-selects-nothing", ["--dist-mark", "nosuchmark", "--dist-mark", "m2"],
        "ERROR: fleet: --dist-mark nosuchmark: no collected test has this mark"),
    Row("dist-mark-unregistered-directory", ["--dist-mark", "m3"],
        "ERROR: fleet: --dist-mark m3: m3 is a directory here and not a registered mark; write m3/ to run the "
        "directory, or --dist-mark=m3 (or register the mark) to divide by it",
        files={"m3/test_dir.py": "def test_dir(): pass\n"}),
    Row("dist-mark-only-a-path", ["--dist-mark", "sub/"],
        "ERROR: fleet: --dist-mark sub/: no mark name given (sub/: a path)", dirs=["sub"]),
    Row("dist-mark-and-dist-file", ["--dist-mark", "m1", "--dist-file", "sub"],
        "ERROR: fleet: --dist-mark and --dist-file each divide the run; use one of them", dirs=["sub"]),
    # --dist-file / --dist-suite
    Row("dist-file-missing", ["--dist-file", "nowhere"], "ERROR: fleet: --dist-file nowhere: no such directory"),
    Row("dist-file-empty", ["--dist-file="], "ERROR: fleet: --dist-file needs a directory, not ''"),
    Row("dist-file-is-a-file", ["--dist-file", "test_a.py"], "ERROR: fleet: --dist-file test_a.py: not a directory"),
    Row("dist-suite-missing", ["--mt", "2", "--dist-suite", "nowhere"],
        "ERROR: fleet: --dist-suite nowhere: no such directory"),
    Row("dist-suite-selects-nothing", ["--dist-suite", "sub"],
        f"ERROR: fleet: --dist-suite */sub: no collected test is under it", dirs=["sub"]),
    # strategy files
    Row("dist-strategy-missing", ["--dist-strategy", "nothere.yaml"],
        "ERROR: fleet: --dist-strategy nothere.yaml: no such file"),
    Row("dist-strategy-empty", ["--dist-strategy="], "ERROR: fleet: --dist-strategy needs a strategy file, not ''"),
    Row("dist-strategy-and-dist-mark", ["--dist-strategy", "s.yaml", "--dist-mark", "m1"],
        "ERROR: fleet: --dist-mark and --dist-strategy each divide the run; use one of them",
        files={"s.yaml": STRATEGY}),
    Row("strategy-broken-yaml", ["--mt", "2"], "ERROR: fleet: conf/dist_strategy.yaml: not valid YAML at line 2: *",
        files={"conf/dist_strategy.yaml": "target: [hpc\nmarks: {}\n"}),
    Row("strategy-empty-file", ["--mt", "2"],
        "ERROR: fleet: conf/dist_strategy.yaml: expected a mapping with 'target' and 'marks', not nothing",
        files={"conf/dist_strategy.yaml": ""}),
    Row("strategy-unknown-target", ["--mt", "2"],
        "ERROR: fleet: conf/dist_strategy.yaml: target 'iaas' is not in 'marks' (known: hpc)",
        files={"conf/dist_strategy.yaml": "target: [iaas]\nmarks:\n  hpc: [m1]\n"}),
    Row("strategy-target-names-no-marks", ["--mt", "2"],
        "ERROR: fleet: conf/dist_strategy.yaml: target 'hpc' names no marks",
        files={"conf/dist_strategy.yaml": "target: [hpc]\nmarks:\n  hpc: []\n"}),
    Row("strategy-bad-mark-name", ["--mp", "1"],
        "ERROR: fleet: conf/dist_strategy.yaml: 'marks.hpc': 'm1 m2' is not a mark name",
        files={"conf/dist_strategy.yaml": "target: [hpc]\nmarks:\n  hpc: ['m1 m2']\n"}),
    Row("strategy-mark-selects-nothing", ["--dist-strategy", "s.yaml"],
        "ERROR: fleet: s.yaml: mark m9: no collected test has this mark",
        files={"s.yaml": "target: [hpc]\nmarks:\n  hpc: [m1, m9]\n"}),
    # conf/config.yaml and --fleet-env
    Row("env-empty", ["--fleet-env="], "ERROR: fleet: --fleet-env needs an environment name, not ''"),
    Row("env-unknown", ["--fleet-env", "prod"],
        "ERROR: fleet: --env prod is not an environment in conf/config.yaml (known: mock)",
        files={"conf/config.yaml": CONFIG}),
    Row("env-no-config", ["--fleet-env", "mock"], "ERROR: fleet: --env mock: conf/config.yaml not found in *"),
    Row("config-section-is-a-list", [],
        "ERROR: fleet: conf/config.yaml: env: mock: section 'mock' is a list, expected a mapping of settings",
        files={"conf/config.yaml": "env: mock\nmock: [a, b]\n", "test_env.py": USES_ENV}),
    Row("config-empty", [],
        "ERROR: fleet: conf/config.yaml is empty; expected 'env: NAME' and a section per environment",
        files={"conf/config.yaml": "", "test_env.py": USES_ENV}),
    Row("config-no-env-key", [],
        "ERROR: fleet: conf/config.yaml names no current environment ('env: NAME'); pass --env (known: mock)",
        files={"conf/config.yaml": "mock:\n  host: x\n", "test_env.py": USES_ENV}),
    Row("config-env-names-no-section", ["--mt", "2"],
        "ERROR: fleet: conf/config.yaml: env: prod is not one of its environments (known: mock)",
        files={"conf/config.yaml": "env: prod\nmock:\n  host: x\n", "test_env.py": USES_ENV}),
    Row("config-no-sections", [],
        "ERROR: fleet: conf/config.yaml: env: mock is not one of its environments (it has no environment sections)",
        files={"conf/config.yaml": "env: mock\n", "test_env.py": USES_ENV}),
    Row("config-a-list", [], "ERROR: fleet: conf/config.yaml: expected a mapping of environments, not list",
        files={"conf/config.yaml": "- mock\n- test\n", "test_env.py": USES_ENV}),
    Row("config-env-a-list", [],
        "ERROR: fleet: conf/config.yaml: env: must name an environment section, not list ['mock']",
        files={"conf/config.yaml": "env: [mock]\nmock: {}\n", "test_env.py": USES_ENV}),
    Row("config-broken-yaml", [], "ERROR: fleet: conf/config.yaml: not valid YAML at line *",
        files={"conf/config.yaml": "env: mock\nmock: [unclosed\n", "test_env.py": USES_ENV}),
    # the fleet command's own flags
    Row("fleet-mp-negative", ["--mp", "-3"], "ERROR: fleet: --mp takes a positive integer or 'auto', not '-3'",
        command="fleet"),
    Row("fleet-p-zero", ["-p", "0"], "ERROR: fleet: -p takes a positive number of worker processes, not '0'",
        command="fleet"),
    Row("fleet-two-counts", ["--mp", "2", "-p", "3"],
        "ERROR: fleet: --mp 2 and -p 3 both give the number of worker processes; use one of them", command="fleet"),
    Row("fleet-env-missing", ["--env"], "ERROR: fleet: --env needs an environment name", command="fleet"),
    Row("fleet-env-empty", ["--env="], "ERROR: fleet: --env needs an environment name", command="fleet"),
    Row("fleet-dist-mark-nothing", ["--dist-mark", "nosuchmark"],
        "ERROR: fleet: --dist-mark nosuchmark: no collected test has this mark", command="fleet"),
    # hooks.py
    Row("hooks-syntax-error", [], "ERROR: fleet: hooks.py line 2: SyntaxError: *", command="fleet",
        files=hooks("from fleet import hook\ndef broken(:\n    pass\n")),
    Row("hooks-import-raises", [], "ERROR: fleet: hooks.py line 2: importing it raised ValueError: no config",
        command="fleet", files=hooks("import os\nraise ValueError('no config')\n")),
    Row("hooks-import-missing-module", [],
        "ERROR: fleet: hooks.py line 1: importing it raised ModuleNotFoundError: No module named 'nosuchmodule'",
        command="fleet", files=hooks("import nosuchmodule\n")),
    Row("hooks-raises-before-yield", [],
        "ERROR: fleet: hooks.py line 10: @hook b raised before the run: RuntimeError: no database",
        command="fleet", files=two_hooks("raise RuntimeError('no database')\nyield\n"),
        stdout=["A before", "A after"]),
    Row("hooks-plain-function-raises", [],
        "ERROR: fleet: hooks.py line 11: @hook b raised before the run: KeyError: 'HOST'",
        command="fleet", files=two_hooks("import os\nos.environ['HOST']\n"), stdout=["A after"]),
    Row("hooks-raises-after-yield", ["--co"],
        "ERROR: fleet: hooks.py line 11: @hook b raised after the run: RuntimeError: cleanup failed",
        command="fleet", code=1, files=two_hooks("yield\nraise RuntimeError('cleanup failed')\n"),
        stdout=["A before", "A after"]),
    Row("hooks-yields-twice", ["--co"],
        "ERROR: fleet: hooks.py line 8: @hook b yields more than once; it must yield once",
        command="fleet", code=1, files=two_hooks("yield\nyield\n"), stdout=["A after"]),
    Row("hooks-hook-wants-arguments", [],
        "ERROR: fleet: hooks.py line 3: @hook prepare raised before the run: TypeError: prepare() missing 1 "
        "required positional argument: 'config'", command="fleet",
        files=hooks("from fleet import hook\n\n@hook\ndef prepare(config):\n    yield\n")),
    Row("hooks-hook-not-a-function", [],
        "ERROR: fleet: hooks.py line 2: importing it raised TypeError: @hook decorates a function, not 3",
        command="fleet", files=hooks("from fleet import hook\nhook(3)\n")),
    Row("hooks-command-takes-fleet-option", ["--mt", "2"],
        "ERROR: fleet: hooks.py line 2: @command('--mt') takes an option fleet or pytest already has; choose "
        "another name", command="fleet",
        files=hooks("from fleet import command\n@command('--mt')\ndef mt(value):\n    print('HIJACKED')\n")),
    Row("hooks-command-takes-fleet-command-flag", [],
        "ERROR: fleet: hooks.py line 2: @command('--env') takes an option fleet or pytest already has; choose "
        "another name", command="fleet",
        files=hooks("from fleet import command\n@command('--env')\ndef env(value):\n    pass\n")),
    Row("hooks-command-takes-pytest-option", [],
        "ERROR: fleet: hooks.py line 2: @command('--tb') takes an option fleet or pytest already has; choose "
        "another name", command="fleet",
        files=hooks("from fleet import command\n@command('--tb')\ndef tb(value):\n    pass\n")),
    Row("hooks-command-takes-conftest-option", [],
        "ERROR: fleet: hooks.py line 2: @command('--tag') takes an option fleet or pytest already has; choose "
        "another name", command="fleet",
        files={**hooks("from fleet import command\n@command('--tag')\ndef tag(value):\n    pass\n"),
               "conftest.py": CONFTEST + "def pytest_addoption(parser):\n    parser.addoption('--tag')\n"}),
    Row("hooks-command-bad-value", ["--count", "many"],
        "ERROR: fleet: hooks.py: argument --count: invalid int value: 'many'", command="fleet",
        files=hooks("from fleet import command\n@command('--count', type=int)\ndef count(value):\n    pass\n")),
    Row("hooks-command-raises", ["--tag", "x"],
        "ERROR: fleet: hooks.py line 4: @command --tag (tag) raised ValueError: unknown tag 'x'", command="fleet",
        files=hooks("from fleet import command\n@command('--tag')\ndef tag(value):\n"
                    "    raise ValueError(f'unknown tag {value!r}')\n")),
    Row("hooks-command-not-an-option", [],
        "ERROR: fleet: hooks.py line 2: importing it raised TypeError: @command needs option names such as "
        "'--tag', not 'tag'", command="fleet",
        files=hooks("from fleet import command\n@command('tag')\ndef tag(value):\n    pass\n")),
    # project hooks and fixtures
    Row("fleet-login-without-provider", ["--mt", "2"],
        "ERROR: fleet: fleet_login needs a login object: pass login= to main_run, or return one from a "
        "pytest_fleet_login(config) hook", files={"test_login.py": "def test_login(fleet_login): pass\n"}),
    Row("fleet-login-without-provider-serial", [],
        "ERROR: fleet: fleet_login needs a login object: pass login= to main_run, or return one from a "
        "pytest_fleet_login(config) hook", files={"test_login.py": "def test_login(fleet_login): pass\n"}),
    Row("fleet-units-not-a-mapping", ["--mt", "2"],
        "ERROR: fleet: pytest_fleet_units must return a mapping of test to unit (or list of units) or None, "
        "not list",
        files={"conftest.py": CONFTEST + "def pytest_fleet_units(config, items):\n    return list(items)\n"}),
    # main_run / threads_run / processes_run
    Row("api-d-mark-int", **api("main_run(d_mark=123)",
        "TypeError: main_run(d_mark=...) takes a mark name, a space-separated string of them, or a list of "
        "mark names, not int 123")),
    Row("api-d-mark-empty", **api("main_run(d_mark='')",
        "ValueError: main_run(d_mark='') names no mark; give a mark name, a space-separated string of them, "
        "or a list of mark names")),
    Row("api-processes-negative", **api("main_run(processes=-1)", "ValueError: main_run(processes=-1) must be 1 or more")),
    Row("api-processes-word", **api("main_run(processes='two')",
        "TypeError: main_run(processes=...) takes a positive int, not str 'two'")),
    Row("api-d-file-int", **api("main_run(d_file=123)", "TypeError: main_run(d_file=...) takes a directory, not int 123")),
    Row("api-mt-word", **api("main_run(mt='yes')", "TypeError: main_run(mt=...) takes True or False, not str 'yes'")),
    Row("api-pytest-args-string", **api("main_run(pytest_args='-x')",
        "TypeError: main_run(pytest_args=...) takes a list of strings such as ['-x', 'tests/'], not str '-x'")),
    Row("api-login-without-methods", **api("main_run(login=42)",
        "TypeError: main_run(login=...) takes an object with login() and make_headers() methods; int 42 has "
        "no login()")),
    Row("api-two-divisions", **api("main_run(d_mark='m1', d_suite='sub')",
        "ValueError: main_run(): d_mark and d_suite each divide the run; give one of them")),
    Row("api-env-empty", **api("main_run(env='')",
        "ValueError: main_run(env='') is empty; give an environment name (or leave it out)")),
    Row("api-threads-run-int", **api("threads_run(42)",
        "TypeError: threads_run() takes ['-m mark', ...], {'path': DIR} or 'DIR' as its first argument, not int 42")),
    Row("api-threads-run-two-marks-in-one-entry", **api("threads_run(['-m m1 m2'])",
        "ValueError: threads_run(['-m m1 m2']): '-m m1 m2': give one mark per entry, as '-m name'")),
    # --ray ADDRESS, RAY_ADDRESS, ini ray_address (checked whether or not Ray is installed)
    Row("ray-address", ["--ray=nowhere"],
        "ERROR: fleet: --ray nowhere: a Ray address is auto, local, HOST:PORT or ray://HOST:10001, not 'nowhere'"),
    Row("ray-port", ["--ray=head:70000"],
        "ERROR: fleet: --ray head:70000: a Ray address is auto, local, HOST:PORT or ray://HOST:10001, not 'head:70000'"),
    Row("ray-env", ["--ray"], "ERROR: fleet: RAY_ADDRESS=ray:/head: a Ray address is auto, local, HOST:PORT or "
        "ray://HOST:10001, not 'ray:/head'", env={"RAY_ADDRESS": "ray:/head"}),
    Row("ray-ini", ["--ray"], "ERROR: fleet: ray_address = head in the ini file: a Ray address is auto, local, "
        "HOST:PORT or ray://HOST:10001, not 'head'", files={"pytest.ini": INI + "ray_address = head\n"}),
    Row("api-main-run-ray", **api("main_run(ray=2)",
        "TypeError: main_run(ray=...) takes a Ray address (auto, local, HOST:PORT or ray://HOST:10001) or True, not int 2")),
    Row("api-threads-run-unknown-keyword", **api("threads_run(['-m m1'], thread=4)",
        "TypeError: threads_run() got an unexpected keyword argument 'thread' (it takes env, mt, mp, processes, "
        "d_mark, d_file, d_suite, pytest_args, login, ray)")),
    Row("api-processes-run-dict", **api("processes_run({'dir': 'sub'})",
        "ValueError: processes_run({'dir': 'sub'}): a dict has one key, 'path'; expected ['-m mark', ...], "
        "{'path': DIR} or 'DIR'")),
    Row("api-mark-selects-nothing", **api(f"main_run(mt=True, d_mark='nosuchmark', {NO_CACHE})",
        "ERROR: fleet: --dist-mark nosuchmark: no collected test has this mark", code=4)),
    Row("api-suite-missing", **api(f"threads_run('nowhere', {NO_CACHE})",
        "ERROR: fleet: --dist-suite nowhere: no such directory", code=4)),
    Row("api-env-unknown", **api(f"main_run(env='prod', {NO_CACHE})",
        "ERROR: fleet: --env prod is not an environment in conf/config.yaml (known: mock)", code=4,
        **{"conf/config.yaml": CONFIG})),
]


def fleet_command() -> str:
    command = shutil.which("fleet", path=str(Path(sys.executable).parent))
    assert command, "the fleet console script is installed beside python"
    return command


def write(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input_is_one_line_before_any_test_runs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, row: Row
) -> None:
    write(pytester.path, {"pytest.ini": INI, "conftest.py": CONFTEST, "test_a.py": TESTS, **row.files})
    for name in row.dirs:
        (pytester.path / name).mkdir()
    for name, value in row.env.items():
        monkeypatch.setenv(name, value)
    if row.command == "pytest":
        result = run(pytester, *row.args, timeout=60)
    elif row.command == "fleet":
        result = pytester.run(fleet_command(), "-p", "no:cacheprovider", *row.args, timeout=60)
    else:
        (pytester.path / "run.py").write_text(API.format(call=row.args[0]))
        result = pytester.run(sys.executable, "run.py", timeout=60)
    output = result.stdout.str() + result.stderr.str()
    shown = f"\n--- stdout\n{result.stdout.str()}\n--- stderr\n{result.stderr.str()}"
    assert result.ret == row.code, shown
    assert "Traceback" not in output and "INTERNALERROR" not in output, shown
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, shown
    pattern = row.error.replace("[", "[[]")
    assert fnmatch(errors[0], pattern), f"{errors[0]!r} is not {row.error!r}{shown}"
    assert sum(line.startswith("ERROR:") for line in result.stdout.lines + result.stderr.lines) == (
        1 if row.error.startswith("ERROR:") else 0), shown
    for line in row.stdout:
        assert line in result.stdout.lines, shown
    assert not (pytester.path / "RAN").exists(), "a test ran: " + (pytester.path / "RAN").read_text()


def ran(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "RAN"
    lines = sorted(path.read_text().split()) if path.exists() else []
    if path.exists():
        path.unlink()
    return lines


def test_good_input_next_to_the_bad(pytester: pytest.Pytester) -> None:
    """What the rules above still let through: a registered mark wins over a
    directory of the same name, --dist-mark adds up, a path after the marks is
    a path, and huge or infinite time limits are no limit while a later short
    one still works."""
    write(pytester.path, {"pytest.ini": INI + "test_timeout = 1e999\n", "conftest.py": CONFTEST, "test_a.py": TESTS,
                          "m1/test_dir.py": "def test_dir(): pass\n",
                          "sub/test_s.py": "import pytest\n@pytest.mark.m1\ndef test_s(): pass\n"
                                           "@pytest.mark.m2\ndef test_t(): pass\n"})
    assert run(pytester, "--dist-mark", "m1").ret == 0  # m1/ exists: the mark wins
    assert ran(pytester) == ["sub/test_s.py::test_s", "test_a.py::test_m1"]
    assert run(pytester, "--dist-mark", "m1", "--dist-mark", "m2", "test_a.py").ret == 0
    assert ran(pytester) == ["test_a.py::test_m1", "test_a.py::test_m2"]
    assert run(pytester, "--dist-mark", "m2", "sub/").ret == 0
    assert ran(pytester) == ["sub/test_s.py::test_t"]
    (pytester.path / "test_a.py").unlink()
    write(pytester.path, {"test_limits.py": """
import time, pytest
@pytest.mark.test_timeout(1e300)
def test_huge(): pass
@pytest.mark.test_timeout(float("inf"))
def test_infinite(): pass
@pytest.mark.test_timeout(0.3)
def test_short():
    for _ in range(100):
        time.sleep(0.05)
"""})
    for mode in ([], ["--mt", "2"]):
        result = run(pytester, "--test-timeout", "1e300", "test_limits.py", *mode)
        assert result.ret == 1, result.stdout.str() + result.stderr.str()
        result.stdout.fnmatch_lines(["*Timeout: the test ran longer than 0.3 s*"])
        assert "Traceback" not in result.stderr.str()
        assert ran(pytester) == ["test_limits.py::test_huge", "test_limits.py::test_infinite",
                                 "test_limits.py::test_short"]
