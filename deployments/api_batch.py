"""The batch scoring API under ``/api/projects/<slug>/batch-scorings/``:
start one (list, create), read one, run it again, cancel it.

Bad input answers 400 with the reason (a version without an approved batch
deployment request among them); a state that does not allow the action 409;
a project whose charter is not signed off 409 with ``charter_url``;
outsiders 404, read-only members 403 on writes.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.http import AuthedApiRequest
from charter.api import GateRefusalOutput, gate_refused
from charter.gates import CharterNotSignedOff
from deployments import batch
from deployments import batch_selectors as sel
from deployments.api_serving import RefusedOutput
from deployments.batch_models import BatchSchedule, BatchScoring
from experiments.jobs import JobConflict
from projects.permissions import get_project_for_user
from web.api import paginated, validation_detail


class BatchScoringOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="version.registered_model.name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)
    snapshot_id = serializers.IntegerField(read_only=True)
    snapshot_version = serializers.IntegerField(source="snapshot.version", read_only=True)
    snapshot_source = serializers.CharField(source="snapshot.source.name", read_only=True)
    reporting_source = serializers.CharField(
        source="reporting_source.name", read_only=True, default=None
    )
    deployment_request_id = serializers.IntegerField(read_only=True, allow_null=True)
    job_id = serializers.IntegerField(read_only=True, allow_null=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    state_label = serializers.CharField(source="get_state_display", read_only=True)

    class Meta:
        model = BatchScoring
        fields = [
            "id",
            "model",
            "version",
            "deployment_request_id",
            "snapshot_id",
            "snapshot_version",
            "snapshot_source",
            "snapshot_digest",
            "output_table",
            "reporting_source",
            "schedule",
            "next_run_at",
            "state",
            "state_label",
            "job_id",
            "runs",
            "rows_written",
            "error",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
        ]


class BatchScoringInput(serializers.Serializer):
    model = serializers.CharField(max_length=256)
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    output_table = serializers.CharField(max_length=100)
    snapshot = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        allow_null=True,
        help_text="A snapshot of the project; by default the latest snapshot of the source "
        "the version was trained from.",
    )
    reporting_source = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        allow_null=True,
        help_text="A PostgreSQL source of the project; by default the embedded SQLite file.",
    )
    schedule = serializers.ChoiceField(choices=BatchSchedule.choices, default=BatchSchedule.NONE)


def _call(fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except DjangoValidationError as exc:
        raise ValidationError(validation_detail(exc)) from exc


def _conflict(exc: Exception) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class BatchScoringListApi(APIView):
    """The project's batch scorings; start one."""

    @extend_schema(responses=BatchScoringOutput(many=True))
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        return paginated(request, self, sel.scorings_of(project), BatchScoringOutput)

    @extend_schema(
        request=BatchScoringInput,
        responses={201: BatchScoringOutput, 409: GateRefusalOutput},
        description=(
            "Score a snapshot with a model version that has an approved batch deployment "
            "request, as a job on the project's compute; the predictions replace this "
            "scoring's rows in the output table of the reporting database."
        ),
    )
    def post(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug, write=True)
        data = BatchScoringInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        version = sel.version_of(project, values["model"], values["version"])
        if version is None:
            raise ValidationError({"version": "The project has no such model version."})
        snapshot = None
        if values.get("snapshot"):
            snapshot = sel.snapshot_of(project, values["snapshot"])
            if snapshot is None:
                raise ValidationError({"snapshot": "The project has no such snapshot."})
        source = None
        if values.get("reporting_source"):
            source = sel.reporting_sources(project).filter(pk=values["reporting_source"]).first()
            if source is None:
                raise ValidationError(
                    {"reporting_source": "The project has no such PostgreSQL source."}
                )
        try:
            created = _call(
                batch.batch_scoring_create,
                actor=request.user,
                version=version,
                output_table=values["output_table"],
                snapshot=snapshot,
                schedule=values["schedule"],
                reporting_source=source,
            )
        except CharterNotSignedOff as exc:
            return gate_refused(exc)
        return Response(
            BatchScoringOutput(sel.scoring_get(project, created.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class BatchScoringDetailApi(APIView):
    @extend_schema(responses=BatchScoringOutput)
    def get(self, request: AuthedApiRequest, slug: str, scoring_id: int) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        return Response(BatchScoringOutput(sel.scoring_get(project, scoring_id)).data)


class BatchScoringRerunApi(APIView):
    """Score the same snapshot again; the new rows replace the scoring's rows."""

    @extend_schema(request=None, responses={202: BatchScoringOutput, 409: RefusedOutput})
    def post(self, request: AuthedApiRequest, slug: str, scoring_id: int) -> Response:
        project, _ = get_project_for_user(request.user, slug, write=True)
        scoring = sel.scoring_get(project, scoring_id)
        try:
            _call(batch.batch_scoring_rerun, actor=request.user, scoring=scoring)
        except CharterNotSignedOff as exc:
            return gate_refused(exc)
        except batch.BatchConflict as exc:
            return _conflict(exc)
        return Response(
            BatchScoringOutput(sel.scoring_get(project, scoring_id)).data,
            status=status.HTTP_202_ACCEPTED,
        )


class BatchScoringCancelApi(APIView):
    """Cancel a queued or scoring run and its job."""

    @extend_schema(request=None, responses={200: BatchScoringOutput, 409: RefusedOutput})
    def post(self, request: AuthedApiRequest, slug: str, scoring_id: int) -> Response:
        project, _ = get_project_for_user(request.user, slug, write=True)
        scoring = sel.scoring_get(project, scoring_id)
        try:
            _call(batch.batch_scoring_cancel, actor=request.user, scoring=scoring)
        except (batch.BatchConflict, JobConflict) as exc:
            return _conflict(exc)
        return Response(BatchScoringOutput(sel.scoring_get(project, scoring_id)).data)


__all__ = [
    "BatchScoringCancelApi",
    "BatchScoringDetailApi",
    "BatchScoringListApi",
    "BatchScoringRerunApi",
]
