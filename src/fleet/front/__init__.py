"""The front end: what the user asks for and how. The ``fleet`` command
(:mod:`.cli`), the options, ini keys and marks (:mod:`.options`), a
project's ``hooks.py`` (:mod:`.project_hooks`), ``run.py``'s API
(:mod:`.api`), the shared login (:mod:`.login`) and ``conf/config.yaml``
(:mod:`.environment`)."""
