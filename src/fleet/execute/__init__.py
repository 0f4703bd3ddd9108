"""Execute: run a plan's tests, on threads (:mod:`.threads`) or in worker
processes (:mod:`.processes`), and log their reports in the main thread.

An executor is built from the session, the :class:`fleet.plan.groups.Plan`
and a :class:`fleet.execute.events.RunEvents`; its ``run()`` returns when
every test has been logged (or the run was stopped), raising what the run
must raise (``KeyboardInterrupt``, ``pytest.exit``).
"""
