"""Benchmarks: ``python -m bench`` (``make bench``) runs the modules in ``MODULES``."""
