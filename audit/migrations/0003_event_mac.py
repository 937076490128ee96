"""Each event's MAC (audit/keys.py). Nullable, so that SQLite adds the column
in place instead of rebuilding the table, which would drop the append-only
triggers; events written before this migration keep no MAC."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]
    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="mac",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
    ]
