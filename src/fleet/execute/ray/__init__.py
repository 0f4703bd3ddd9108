"""Worker processes on a Ray cluster (``--ray``): the processes controller with
remote workers (:mod:`.executor`), each hosted by an actor on a node
(:mod:`.host`) and reached through a bridge (:mod:`.bridge`); the cluster
joined and the rootdir shipped (:mod:`.cluster`). Imported only when a run
asks for Ray.
"""
