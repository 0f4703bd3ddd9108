"""fleet: a parallel test runner for pytest.

``pytest --mt N`` runs the collected tests on N threads of one process, with
pytest's own semantics: higher-scoped fixtures once per scope instance, each
test's output its own, the same reports and exit codes as a serial run.

PYTEST_DONT_REWRITE: the ``fleet`` command imports this package before pytest
starts, so pytest could not rewrite its asserts anyway (they are invariants,
not test assertions) and would warn that it cannot.
"""

from fleet.front.api import main_run, processes_run, threads_run
from fleet.front.project_hooks import command, hook

__all__ = ["command", "hook", "main_run", "processes_run", "threads_run"]
__version__ = "0.1.0"
