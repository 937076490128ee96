"""Reads of batch scoring, with their joins done."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from datasets.models import DataSource, Snapshot, SourceKind
from deployments.batch_models import BatchScoring
from deployments.gate_models import DeploymentRequest, RequestState, Target
from experiments.models import ModelVersion
from projects.models import Project


def scorings_of(project: Project) -> QuerySet[BatchScoring]:
    """The project's batch scorings, newest first."""
    return BatchScoring.objects.filter(project=project).select_related(
        "version__registered_model", "snapshot__source", "reporting_source", "requested_by", "job"
    )


def scoring_get(project: Project, scoring_id: int) -> BatchScoring:
    found = scorings_of(project).filter(pk=scoring_id).first()
    if found is None:
        raise Http404("No such batch scoring.")
    return found


def version_of(project: Project, name: str, version: int) -> ModelVersion | None:
    return (
        ModelVersion.objects.select_related("registered_model")
        .filter(registered_model__project=project, registered_model__name=name, version=version)
        .first()
    )


def snapshot_of(project: Project, snapshot_id: int) -> Snapshot | None:
    return (
        Snapshot.objects.select_related("source")
        .filter(source__project=project, pk=snapshot_id)
        .first()
    )


def reporting_sources(project: Project) -> QuerySet[DataSource]:
    """The project's PostgreSQL sources, which may take batch predictions."""
    return DataSource.objects.filter(project=project, kind=SourceKind.POSTGRES).order_by("name")


def snapshots_of(project: Project) -> QuerySet[Snapshot]:
    return (
        Snapshot.objects.filter(source__project=project)
        .select_related("source")
        .order_by("source__name", "-version")
    )


def approved_versions(project: Project) -> QuerySet[ModelVersion]:
    """The versions of the project with an approved batch deployment request."""
    approved = DeploymentRequest.objects.filter(
        project=project, target=Target.BATCH, state=RequestState.APPROVED
    ).values("version_id")
    return (
        ModelVersion.objects.filter(pk__in=approved)
        .select_related("registered_model")
        .order_by("registered_model__name", "-version")
    )
