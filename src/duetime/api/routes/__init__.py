"""Route modules, one per resource."""

from __future__ import annotations
