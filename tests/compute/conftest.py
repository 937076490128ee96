from __future__ import annotations

from tests.workspaces.conftest import catalog, small  # noqa: F401  (the seeded catalog)
