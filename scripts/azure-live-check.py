#!/usr/bin/env python
"""Check the Azure ML provider against a real workspace (what offline tests cannot).

    .venv/bin/python scripts/azure-live-check.py              # read-only checks
    .venv/bin/python scripts/azure-live-check.py --lifecycle  # + create/resize/stop/delete

Needs AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZURE_ML_WORKSPACE,
AZURE_NAME_SALT and AZURE_TENANT_ID, with AZURE_CLIENT_ID/AZURE_CLIENT_SECRET
or an azure-identity login (``az login``). ``--lifecycle`` also needs
AZURE_LIVE_OBJECT_ID (the Entra object id the test instance is assigned to)
and creates a billed compute instance (the smallest size offered), which it
deletes at the end. Exit status: 0 every check passed, 1 a check failed,
2 the checks did NOT run (not configured) -- never mistake 2 for a pass.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NOT_RUN = 2
REQUIRED = (
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_RESOURCE_GROUP",
    "AZURE_ML_WORKSPACE",
    "AZURE_NAME_SALT",
    "AZURE_TENANT_ID",
)


def check(what: str, ok: bool, detail: object = "") -> bool:
    print(f"{'ok  ' if ok else 'FAIL'} {what}{f': {detail}' if detail else ''}")
    return ok


def wait(provider: object, name: str, want: str, op_url: str, minutes: int = 20) -> str:
    from cloud.azure import AzureProvider

    assert isinstance(provider, AzureProvider)
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        if op_url:
            op = provider.operation_status(op_url)
            if op.failed:
                return f"operation failed: {op.detail}"
        status = provider.workspace_status(name)
        if status.state == want or status.state == "failed":
            return f"{status.state} ({status.detail})"
        time.sleep(20)
    return "timed out"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifecycle", action="store_true", help="create, resize, stop, delete")
    args = parser.parse_args()
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if args.lifecycle and not os.environ.get("AZURE_LIVE_OBJECT_ID"):
        missing.append("AZURE_LIVE_OBJECT_ID")
    if missing:
        print(f"LIVE AZURE CHECKS DID NOT RUN: set {', '.join(missing)}", file=sys.stderr)
        return NOT_RUN

    from cloud.azure import AzureProvider
    from cloud.base import SizeSpec, WorkspaceSpec, workspace_name

    provider = AzureProvider(
        subscription_id=os.environ["AZURE_SUBSCRIPTION_ID"],
        resource_group=os.environ["AZURE_RESOURCE_GROUP"],
        workspace=os.environ["AZURE_ML_WORKSPACE"],
        name_salt=os.environ["AZURE_NAME_SALT"],
        tenant_id=os.environ["AZURE_TENANT_ID"],
        client_id=os.environ.get("AZURE_CLIENT_ID", ""),
        client_secret=os.environ.get("AZURE_CLIENT_SECRET", ""),
    )
    ok = True
    sizes = provider.list_sizes()
    ok &= check(
        "sizes with vCPUs and memory",
        bool(sizes) and all(s.vcpus and s.memory_gb for s in sizes),
        len(sizes),
    )
    usage = provider.list_usage()
    ok &= check("usage lines with limits", any(u["limit"] for u in usage), len(usage))
    absent = workspace_name(999_999_999, provider.name_salt)
    ok &= check(
        "an absent instance reads as deleted", provider.workspace_status(absent).state == "deleted"
    )
    response = provider._request(
        "get workspace", "GET", provider._workspace_path, api_version="2024-10-01-preview"
    )
    ok &= check("the workspace answers with an ETag", bool(response.headers.get("ETag")))
    if not args.lifecycle:
        return 0 if ok else 1

    small = sorted(sizes, key=lambda s: (s.gpus, s.vcpus, s.memory_gb))
    first, second = small[0], next(s for s in small[1:] if s.name != small[0].name)
    name = workspace_name(int(time.time()) % 10**9, provider.name_salt)
    print(f"lifecycle of {name}: {first.name} -> {second.name}")
    try:
        spec = WorkspaceSpec(
            name,
            first,
            owner_username="live-check",
            owner_object_id=os.environ["AZURE_LIVE_OBJECT_ID"],
        )
        created = provider.workspace_create(spec)
        ok &= check("create returns an operation URL", bool(created.operation_url))
        result = wait(provider, name, "running", created.operation_url)
        ok &= check("instance runs", result.startswith("running"), result)
        ok &= check("Jupyter Lab URL", provider.workspace_status(name).url.startswith("https://"))
        target = SizeSpec(second.name, second.vcpus, second.memory_gb, second.gpus)
        for _ in range(60):  # the convergent resize, as the portal's task calls it
            step = provider.workspace_resize(name, target)
            if step.state in ("running", "failed"):
                break
            time.sleep(20)
        ok &= check("resize through POST .../resize", step.state == "running", step.detail)
        stopped = provider.workspace_stop(name)
        result = wait(provider, name, "stopped", stopped.operation_url)
        ok &= check("stop", result.startswith("stopped"), result)
    finally:
        provider.workspace_delete(name)
        print(f"deleting {name} (check the Azure portal if this run was interrupted)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
