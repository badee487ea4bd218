"""Benchmarks: ``python -m bench`` (``make bench``) runs every module in ``bench.__main__.MODULES``."""
