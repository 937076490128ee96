"""The demo project's data: an upload source with a CSV made from a data
set that ships inside scikit-learn (no download)."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import User
from datasets.models import DataSource
from datasets.services import snapshot_upload, source_create
from projects.models import Project

DEMO_SOURCE = "Wine measurements (demo)"


def demo_data_seed(*, project: Project, actor: User) -> DataSource | None:
    """Register the demo upload source and upload its CSV, once."""
    if DataSource.objects.filter(project=project, name=DEMO_SOURCE).exists():
        return None
    from sklearn.datasets import load_wine

    csv = load_wine(as_frame=True).frame.to_csv(index=False).encode()
    source = source_create(
        actor=actor,
        project=project,
        name=DEMO_SOURCE,
        kind="upload",
        location="on_prem",
        description="Chemical analysis of 178 wines (scikit-learn's bundled wine data set).",
    )
    snapshot_upload(
        actor=actor,
        source=source,
        upload=SimpleUploadedFile("wine.csv", csv, content_type="text/csv"),
    )
    return source
