"""Stage 5: validation of model versions, the deployment gate, and serving.

The models live in two modules, imported here so Django finds them:
``gate_models`` (validation reports and deployment requests) and
``serving_models`` (endpoints, their deployments and traffic),
``drift_models`` (drift checks of running deployments) and
``batch_models`` (batch scorings into the reporting database).
"""

from __future__ import annotations

from deployments.batch_models import *  # noqa: F403
from deployments.drift_models import *  # noqa: F403
from deployments.gate_models import *  # noqa: F403
from deployments.serving_models import *  # noqa: F403
