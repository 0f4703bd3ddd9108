"""Plan: which tests run (:mod:`.division`), in which groups and order
(:mod:`.groups`), on how many workers (:mod:`.workers`), and which may start
now (:mod:`.schedule`)."""
