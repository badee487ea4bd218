"""Importable job modules for executor tests (worker processes import them by name)."""
