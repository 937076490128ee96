"""Each run's lowest and highest value per metric key, kept beside its latest
point, filled in from the points already logged."""

from typing import Any

from django.db import migrations, models

# NaN left out, as the writes do (SQLite stores NaN as NULL, which min/max skip).
_FILL = """
UPDATE experiments_latestmetric SET
    low = (SELECT min(m.value) FROM experiments_metric m
           WHERE m.run_id = experiments_latestmetric.run_id
             AND m.key_id = experiments_latestmetric.key_id {finite}),
    high = (SELECT max(m.value) FROM experiments_metric m
            WHERE m.run_id = experiments_latestmetric.run_id
              AND m.key_id = experiments_latestmetric.key_id {finite})
"""


def fill(apps: Any, schema_editor: Any) -> None:
    finite = (
        "AND m.value <> 'NaN'::float8" if schema_editor.connection.vendor == "postgresql" else ""
    )
    schema_editor.execute(_FILL.format(finite=finite))


class Migration(migrations.Migration):
    dependencies = [("experiments", "0005_sweeps")]

    operations = [
        migrations.AddField(
            model_name="latestmetric", name="low", field=models.FloatField(null=True)
        ),
        migrations.AddField(
            model_name="latestmetric", name="high", field=models.FloatField(null=True)
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
