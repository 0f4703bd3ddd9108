"""Plugin compatibility suite: one small realistic suite per pytest plugin, run
serially and in fleet's parallel modes, each parallel run checked against the
serial one (outcomes, exit code, counts line, and the plugin's own output).

Needs the plugins: ``pip install -e ".[test,plugins]"``; ``scripts/test-matrix``
builds an environment with them per pytest version and runs this package there.
"""
