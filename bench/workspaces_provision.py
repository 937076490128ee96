"""Time an approved workspace request to a running local notebook, end to end.

Usage (PostgreSQL and Redis from the test environment, a real worker):

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/workspaces_provision.py --runs 5

Each run calls ``workspace_request`` (within quota, so approved at once and
the provisioning task queued after commit), then polls the database until the
workspace is running and its notebook answers ``/api/status`` with its token.
The audit trail splits the time: commit → the worker claims the task, claim
→ the provider's create returns and the state is recorded. Each workspace is
then deleted through the portal and the worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("STAGEGATE_VAR_DIR", tempfile.mkdtemp(prefix="stagegate-bench-"))


def answers(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    token = urllib.parse.parse_qs(parsed.query)["token"][0]
    request = urllib.request.Request(  # noqa: S310 - the notebook's loopback address
        f"http://{parsed.netloc}/api/status", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", default="Standard_D2s_v3")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from accounts.models import User
    from audit.models import AuditEvent
    from compute import services as compute_services
    from compute.models import ComputeSize
    from projects.services import project_create
    from tests.conftest import start_worker, stop_worker
    from workspaces import services
    from workspaces.models import Workspace

    lead, _ = User.objects.get_or_create(username="bench-lead")
    admin, _ = User.objects.get_or_create(username="bench-admin", is_staff=True)
    project = project_create(actor=lead, name="Bench", slug=f"bench-{int(time.time())}")
    compute_services.quota_set(
        actor=admin, project=project, max_vcpus=64, max_gpus=0, max_running=50
    )
    compute_services.quota_set(actor=admin, user=lead, max_vcpus=64, max_gpus=0, max_running=50)
    size = ComputeSize.objects.get(name=args.size)

    worker = start_worker("bench", "provisioning")
    totals, pickups, provider_times = [], [], []
    try:
        for run in range(args.runs):
            started = time.monotonic()
            ws = services.workspace_request(
                actor=lead, project=project, name=f"bench-{run}", size=size
            )
            assert ws.state == "approved", ws.state
            while True:
                ws.refresh_from_db()
                if ws.state == "running" and answers(ws.url):
                    break
                if ws.state == "failed" or time.monotonic() - started > 120:
                    raise SystemExit(f"run {run}: {ws.state} {ws.state_reason}")
                time.sleep(0.02)
            totals.append(time.monotonic() - started)
            events = {
                e.action: e.created_at
                for e in AuditEvent.objects.filter(
                    object_type="workspaces.workspace", object_id=str(ws.pk)
                )
            }
            pickups.append(
                (
                    events["workspace.provision_attempt"] - events["workspace.approved"]
                ).total_seconds()
            )
            provider_times.append(
                (
                    events["workspace.running"] - events["workspace.provision_attempt"]
                ).total_seconds()
            )
            services.workspace_delete(actor=lead, workspace=ws)
            while Workspace.objects.get(pk=ws.pk).state != "deleted":
                time.sleep(0.05)
            print(f"run {run}: {totals[-1]:.2f} s", flush=True)
    finally:
        stop_worker(worker)

    def row(name: str, values: list[float]) -> str:
        return (
            f"| {name} | {statistics.median(values):.2f} s | {min(values):.2f} s "
            f"| {max(values):.2f} s | {len(values)} |"
        )

    print("| step | median | min | max | runs |")
    print("|---|---|---|---|---|")
    print(row("approved request → notebook answers", totals))
    print(row("commit → worker claims the task", pickups))
    print(row("claim → provider create returns, running recorded", provider_times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
