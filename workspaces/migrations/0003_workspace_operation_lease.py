"""Workspace operations carry the lease every piece of background work has
(background.models.Leased) in place of their own claim heartbeat.

Operations under way when this runs get a waiting lease from now on: their
task, if it lives, claims again on its next poll; if it was lost, recovery
sends it again once the lease runs out, as it does for any other work.
"""

from datetime import timedelta

from django.conf import settings
from django.db import migrations, models

WORKING = ["approved", "provisioning", "stopping", "resizing", "deleting"]


def lease_operations_under_way(apps, schema_editor):
    from django.utils import timezone

    Workspace = apps.get_model("workspaces", "Workspace")
    now = timezone.now()
    grace = timedelta(seconds=float(settings.BACKGROUND_DISPATCH_GRACE_SECONDS))
    Workspace.objects.filter(state__in=WORKING).update(
        lease_owner="", dispatched_at=now, lease_expires_at=now + grace
    )


class Migration(migrations.Migration):
    dependencies = [
        ("workspaces", "0002_provider_name_operation_url"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="workspace",
            name="claimed_at",
        ),
        migrations.AddField(
            model_name="workspace",
            name="dispatched_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="workspace",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="workspace",
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AddField(
            model_name="workspace",
            name="lease_owner",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.RunPython(lease_operations_under_way, migrations.RunPython.noop),
    ]
