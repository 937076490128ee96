"""Where things run. ``get_provider()`` returns the configured provider."""

from __future__ import annotations
