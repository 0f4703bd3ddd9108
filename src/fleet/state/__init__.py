"""pytest's state made safe to share: per thread, or handed between processes.

Everything fleet does to pytest's own objects lives here, behind
:mod:`.internals`, the one module that names private pytest attributes.
Every stage may use this package; it uses none of them.
"""
