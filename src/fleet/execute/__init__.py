"""Execute: the places tests run. One module per kind of worker."""
