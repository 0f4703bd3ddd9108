"""The end of the data path: what a run shows while it goes and leaves behind."""
