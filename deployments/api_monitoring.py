"""The monitoring API: ``/api/projects/{slug}/monitors/`` (each endpoint's
latest drift), ``/monitors/{name}/`` (its reports over time, per feature) and
``POST /monitors/{name}/retrain/`` (a training job from the champion's recipe).

Outsiders get 404, read-only members 403 on the retraining; a retraining that
cannot start (no champion, no job behind it, one already under way) 409.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.http import AuthedApiRequest
from cloud.base import DEPLOYMENT_NAMES
from deployments import monitoring
from deployments import monitoring_selectors as sel
from deployments.api_serving import RefusedOutput
from deployments.drift_models import DriftReport
from deployments.serving_selectors import endpoints_of, get_endpoint_for_user
from projects.permissions import get_project_for_user
from web.api import validation_detail


class FeatureDriftOutput(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.CharField(help_text="ok, warn, alert or no_data")
    psi = serializers.FloatField(allow_null=True)
    distance_name = serializers.CharField(help_text="wasserstein or jensen_shannon")
    distance = serializers.FloatField(allow_null=True)
    reference_rows = serializers.IntegerField()
    current_rows = serializers.IntegerField()
    reference_missing = serializers.FloatField()
    current_missing = serializers.FloatField()
    unseen = serializers.FloatField()
    note = serializers.CharField(allow_blank=True)
    bins = serializers.ListField(child=serializers.CharField(), default=list)
    reference_shares = serializers.ListField(child=serializers.FloatField(), default=list)
    current_shares = serializers.ListField(child=serializers.FloatField(), default=list)
    edges = serializers.ListField(child=serializers.FloatField(), default=list)


class DriftReportOutput(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    model_version = serializers.IntegerField(source="model_version.version")
    deployment = serializers.CharField(source="deployment.name")
    features = FeatureDriftOutput(many=True)
    prediction = FeatureDriftOutput(allow_null=True)

    class Meta:
        model = DriftReport
        fields = [
            "id",
            "deployment",
            "model_version",
            "computed_at",
            "status",
            "reference_rows",
            "current_rows",
            "judged_features",
            "drifted_features",
            "drifted_share",
            "drift_share",
            "dataset_drift",
            "prediction_status",
            "note",
            "features",
            "prediction",
        ]

    def get_status(self, obj: DriftReport) -> str:
        return sel.report_status(obj)


class LatestOutput(serializers.Serializer):
    """A deployment's latest check, without its features."""

    id = serializers.IntegerField()
    computed_at = serializers.DateTimeField()
    current_rows = serializers.IntegerField()
    judged_features = serializers.IntegerField()
    drifted_features = serializers.IntegerField()
    drifted_share = serializers.FloatField()
    dataset_drift = serializers.BooleanField()
    prediction_status = serializers.CharField()


class MonitoredDeploymentOutput(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.CharField()
    model_version = serializers.IntegerField()
    status = serializers.CharField(help_text='ok, warn, alert, no_data, or "" before a check')
    latest = LatestOutput(source="report", allow_null=True)


class MonitorOutput(serializers.Serializer):
    name = serializers.CharField()
    model_name = serializers.CharField()
    status = serializers.CharField(
        help_text="The worst latest status of the running deployments: ok, warn, alert, "
        'no_data, or "" before a check'
    )
    checked_at = serializers.DateTimeField(allow_null=True)
    deployments = MonitoredDeploymentOutput(many=True)


class MonitorDetailOutput(MonitorOutput):
    reports = DriftReportOutput(many=True, help_text="Oldest first.")


class MonitorQuery(serializers.Serializer):
    deployment = serializers.ChoiceField(
        choices=list(DEPLOYMENT_NAMES), required=False, help_text="Default: every deployment."
    )
    limit = serializers.IntegerField(min_value=1, max_value=sel.HISTORY, default=sel.HISTORY)


class RetrainInput(serializers.Serializer):
    report = serializers.IntegerField(
        required=False, min_value=1, help_text="The drift report the retraining answers."
    )


class RetrainOutput(serializers.Serializer):
    job = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    state = serializers.CharField()
    recipe_job = serializers.IntegerField(source="rerun_of_id")
    split = serializers.IntegerField(source="split_id")


class MonitorListApi(APIView):
    """Each endpoint of the project with the latest drift check of its deployments."""

    @extend_schema(responses=MonitorOutput(many=True))
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        monitors = sel.monitors_of(list(endpoints_of(project)))
        return Response(MonitorOutput(monitors, many=True).data)


class MonitorDetailApi(APIView):
    """One endpoint's drift reports over time (oldest first), per feature."""

    @extend_schema(
        parameters=[
            OpenApiParameter("deployment", str, enum=list(DEPLOYMENT_NAMES), required=False),
            OpenApiParameter("limit", int, required=False, description=f"At most {sel.HISTORY}."),
        ],
        responses=MonitorDetailOutput,
    )
    def get(self, request: AuthedApiRequest, slug: str, name: str) -> Response:
        endpoint, _ = get_endpoint_for_user(request.user, slug, name)
        query = MonitorQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data.get("deployment")
        monitor = sel.monitors_of([endpoint])[0]
        reports = [
            report
            for d in endpoint.deployments.all()
            if wanted in (None, d.name)
            for report in sel.reports_of(d, limit=query.validated_data["limit"])
        ]
        reports.sort(key=lambda r: (r.computed_at, r.pk))
        data: dict[str, Any] = dict(MonitorOutput(monitor).data)
        data["reports"] = DriftReportOutput(reports, many=True).data
        return Response(data)


class MonitorRetrainApi(APIView):
    """Start a training job from the champion's recipe on the newest ready
    split of its source (lead, ML engineers, data scientists)."""

    @extend_schema(
        request=RetrainInput,
        responses={201: RetrainOutput, 400: RefusedOutput, 409: RefusedOutput},
    )
    def post(self, request: AuthedApiRequest, slug: str, name: str) -> Response:
        endpoint, _ = get_endpoint_for_user(request.user, slug, name, write=True)
        data = RetrainInput(data=request.data)
        data.is_valid(raise_exception=True)
        report = None
        if "report" in data.validated_data:
            report = DriftReport.objects.filter(
                deployment__endpoint=endpoint, pk=data.validated_data["report"]
            ).first()
            if report is None:
                return Response(
                    {"report": ["No drift report of this endpoint has that id."]},
                    status=status.HTTP_400_BAD_REQUEST,
                )
        try:
            job = monitoring.endpoint_retrain(actor=request.user, endpoint=endpoint, report=report)
        except monitoring.RetrainRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except ValidationError as exc:
            return Response(validation_detail(exc), status=status.HTTP_400_BAD_REQUEST)
        return Response(RetrainOutput(job).data, status=status.HTTP_201_CREATED)
