"""The scoring server: an HTTP app around a scoring script with `init()` and `run(raw_data)`.

This package ships into the container image on its own: it never imports the rest of the backend.
"""
