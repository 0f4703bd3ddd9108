"""Worker processes: the controller (:mod:`.controller`) starts them
(:mod:`.launch`), hands out work (:mod:`.dispatch`), judges the ones that die
(:mod:`.crashes`); each worker (:mod:`.worker`) runs chains on its threads;
:mod:`.wire` is what travels between them.
"""
