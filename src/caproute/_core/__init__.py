"""The sans-IO core: pure functions over plain data.

Nothing in this package may import an HTTP library, tenacity, cachetools, anyio,
socket, or read the clock or the file system; `tests/test_sans_io.py` enforces it.
"""
