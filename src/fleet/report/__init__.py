"""Report: what a parallel run did, beyond pytest's own reports. The run's
record (:mod:`.monitor`), the live view (:mod:`.live`), ``--timeline``
(:mod:`.timeline`) and the end-of-run section (:mod:`.utilisation`),
brought together for a run by :mod:`.run_report`."""
