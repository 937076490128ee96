"""The data API: sources, snapshots, profiles, rules and splits.

Explicit input and output serializers; secrets are write-only and come back
only as "set" / "not set".
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.http import AuthedApiRequest
from accounts.models import User
from charter.gates import CharterNotSignedOff
from datasets import services
from datasets.forms import MAX_SEED
from datasets.models import (
    DataSource,
    Ingestion,
    Location,
    Mode,
    RuleKind,
    Snapshot,
    SourceKind,
    Split,
    ValidationRule,
)
from datasets.permissions import get_snapshot_for_user, get_source_for_user, get_split_for_user
from datasets.selectors import (
    SOURCE_SORTS,
    VERSION_SORTS,
    next_runs,
    snapshots_search,
    source_ingestions,
    source_snapshots,
    sources_for_project,
    sources_search,
)
from datasets.storage import TooLarge, default_store
from projects.permissions import get_project_for_user
from web.api import paginated, validation_detail
from web.parsers import FormParser, JSONParser, MultiPartParser


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "This conflicts with the current state."


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Too large."


def _invalid(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(validation_detail(exc))


# --- Serializers -------------------------------------------------------------


class SourceOutput(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", default=None)
    secrets = serializers.SerializerMethodField()
    latest_version = serializers.IntegerField(read_only=True, default=None)
    next_run = serializers.SerializerMethodField()

    class Meta:
        model = DataSource
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "location",
            "mode",
            "owner",
            "config",
            "secrets",
            "refresh_cron",
            "next_run",
            "test_status",
            "test_message",
            "tested_at",
            "latest_version",
            "exploratory",
            "sensitive_columns",
            "created_at",
        ]
        read_only_fields = ["exploratory", "sensitive_columns"]

    def get_secrets(self, source: DataSource) -> dict[str, str]:
        names = services.KIND_FIELDS[source.kind][2]
        return {n: ("set" if n in source.secret_names else "not set") for n in names}

    def get_next_run(self, source: DataSource) -> str | None:
        runs = self.context.get("next_runs")
        if runs is None:
            runs = next_runs([source])
        when = runs.get(source.pk)
        return when.isoformat() if when else None


class SourceInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=SourceKind.choices)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    location = serializers.ChoiceField(choices=Location.choices, default=Location.CLOUD)
    mode = serializers.ChoiceField(choices=Mode.choices, default=Mode.BATCH)
    owner = serializers.CharField(max_length=150, required=False)
    config = serializers.DictField(required=False, default=dict)
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, default=dict, write_only=True
    )
    refresh_cron = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )


class SourceUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    location = serializers.ChoiceField(choices=Location.choices, required=False)
    mode = serializers.ChoiceField(choices=Mode.choices, required=False)
    owner = serializers.CharField(max_length=150, required=False)
    config = serializers.DictField(required=False)
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, write_only=True
    )
    refresh_cron = serializers.CharField(max_length=100, required=False, allow_blank=True)
    sensitive_columns = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=500,
        help_text="Columns never written to a served model's request log.",
    )


class IngestionOutput(serializers.ModelSerializer):
    version = serializers.IntegerField(source="snapshot.version", default=None)
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Ingestion
        fields = [
            "id",
            "status",
            "trigger",
            "original_name",
            "sha256",
            "size",
            "rows_processed",
            "bytes_processed",
            "bytes_total",
            "version",
            "error",
            "created_by",
            "created_at",
            "finished_at",
        ]


class SnapshotOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Snapshot
        fields = [
            "version",
            "sha256",
            "size",
            "data_format",
            "rows",
            "columns",
            "original_name",
            "csv_delimiter",
            "csv_encoding",
            "csv_detected",
            "validation_status",
            "validation_results",
            "created_by",
            "created_at",
        ]


class RuleOutput(serializers.ModelSerializer):
    class Meta:
        model = ValidationRule
        fields = ["id", "kind", "column", "params", "created_at"]


class RuleInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=RuleKind.choices)
    column = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    params = serializers.DictField(required=False, default=dict)


class SplitOutput(serializers.ModelSerializer):
    source_id = serializers.IntegerField(source="parent.source_id")
    version = serializers.IntegerField(source="parent.version")

    class Meta:
        model = Split
        fields = [
            "id",
            "source_id",
            "version",
            "number",
            "status",
            "test_fraction",
            "seed",
            "stratify_column",
            "group_column",
            "train_sha256",
            "train_rows",
            "train_size",
            "test_sha256",
            "test_rows",
            "test_size",
            "error",
            "created_at",
            "finished_at",
        ]


class SplitInput(serializers.Serializer):
    test_fraction = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.2)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, default=0)
    stratify_column = serializers.CharField(
        max_length=200, required=False, allow_blank=True, allow_null=True, default=None
    )
    group_column = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )


def _owner(username: str | None) -> User | None:
    if not username:
        return None
    user = User.objects.filter(username=username).first()
    if user is None:
        raise ValidationError({"owner": ["No such user."]})
    return user


# --- Sources ---------------------------------------------------------------------


class SourceListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Name, description or kind contains this."),
            OpenApiParameter("sort", str, enum=list(SOURCE_SORTS), description="Order."),
        ],
        responses=SourceOutput(many=True),
    )
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        sources = sources_search(
            sources_for_project(project=project),
            query=request.query_params.get("q", "")[:200],
            sort=request.query_params.get("sort", "name"),
        )
        from rest_framework.pagination import PageNumberPagination

        paginator = PageNumberPagination()
        page: Any = paginator.paginate_queryset(sources, request, view=self)
        runs = next_runs(page)
        data = SourceOutput(page, many=True, context={"next_runs": runs}).data
        return paginator.get_paginated_response(data)

    @extend_schema(request=SourceInput, responses={201: SourceOutput, 409: None})
    def post(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug, write=True)
        data = SourceInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        values["owner"] = _owner(values.pop("owner", None))
        try:
            source = services.source_create(actor=request.user, project=project, **values)
        except DjangoValidationError as exc:
            raise _invalid(exc) from exc
        except CharterNotSignedOff as exc:
            return Response(
                {"detail": str(exc), "charter_url": exc.charter_url},
                status=status.HTTP_409_CONFLICT,
            )
        source = sources_for_project(project=project).get(pk=source.pk)
        return Response(SourceOutput(source).data, status=status.HTTP_201_CREATED)


class SourceDetailApi(APIView):
    @extend_schema(responses=SourceOutput)
    def get(self, request: AuthedApiRequest, slug: str, source_id: int) -> Response:
        project, source = get_source_for_user(request.user, slug, source_id)
        return Response(SourceOutput(sources_for_project(project=project).get(pk=source.pk)).data)

    @extend_schema(request=SourceUpdateInput, responses=SourceOutput)
    def patch(self, request: AuthedApiRequest, slug: str, source_id: int) -> Response:
        project, source = get_source_for_user(request.user, slug, source_id, write=True)
        data = SourceUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "owner" in values:
            values["owner"] = _owner(values["owner"])
        try:
            services.source_update(actor=request.user, source=source, **values)
        except DjangoValidationError as exc:
            raise _invalid(exc) from exc
        return Response(SourceOutput(sources_for_project(project=project).get(pk=source.pk)).data)

    @extend_schema(responses={204: None, 409: None})
    def delete(self, request: AuthedApiRequest, slug: str, source_id: int) -> Response:
        _, source = get_source_for_user(request.user, slug, source_id, write=True)
        try:
            services.source_delete(actor=request.user, source=source)
        except services.SourceInUse as exc:
            raise Conflict(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceTestApi(APIView):
    @extend_schema(request=None, responses={202: SourceOutput})
    def post(self, request: AuthedApiRequest, slug: str, source_id: int) -> Response:
        project, source = get_source_for_user(request.user, slug, source_id, write=True)
        try:
            services.source_test_request(actor=request.user, source=source)
        except DjangoValidationError as exc:
            raise _invalid(exc) from exc
        source = sources_for_project(project=project).get(pk=source.pk)
        return Response(SourceOutput(source).data, status=status.HTTP_202_ACCEPTED)


class SourcePullApi(APIView):
    @extend_schema(request=None, responses={202: IngestionOutput})
    def post(self, request: AuthedApiRequest, slug: str, source_id: int) -> Response:
        _, source = get_source_for_user(request.user, slug, source_id, write=True)
        try:
            ingestion = services.source_pull_request(actor=request.user, source=source)
        except DjangoValidationError as exc:
            raise _invalid(exc) from exc
        return Response(IngestionOutput(ingestion).data, status=status.HTTP_202_ACCEPTED)


class IngestionListApi(APIView):
    @extend_schema(responses=IngestionOutput(many=True))
    def get(self, request: AuthedApiRequest, slug: str, source_id: int) -> Response:
        _, source = get_source_for_user(request.user, slug, source_id)
        return Response(
            IngestionOutput(source_ingestions(source=source, limit=100), many=True).data
        )


class IngestionDetailApi(APIView):
    @extend_schema(responses=IngestionOutput)
    def get(
        self, request: AuthedApiRequest, slug: str, source_id: int, ingestion_id: int
    ) -> Response:
        _, source = get_source_for_user(request.user, slug, source_id)
        ingestion = (
            source.ingestions.select_related("snapshot", "created_by")
            .filter(pk=ingestion_id)
            .first()
        )
        if ingestion is None:
            from django.http import Http404

            raise Http404("No such ingestion.")
        return Response(IngestionOutput(ingestion).data)


# --- Snapshots ------------------------------------------------------------------------


class SnapshotListApi(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="File name, sha256 prefix or version."),
            OpenApiParameter("sort", str, enum=list(VERSION_SORTS), description="Order."),
        ],
        responses=SnapshotOutput(many=True),
    )
    def get(self, request: AuthedApiRequest, slug: str, source_id: int) -> Response:
        _, source = get_source_for_user(request.user, slug, source_id)
        snapshots = snapshots_search(
            source_snapshots(source=source),
            query=request.query_params.get("q", "")[:200],
            sort=request.query_params.get("sort", "newest"),
        )
        return paginated(request, self, snapshots, SnapshotOutput)

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        responses={202: IngestionOutput, 200: IngestionOutput},
    )
    def post(self, request: AuthedApiRequest, slug: str, source_id: int) -> Response:
        _, source = get_source_for_user(request.user, slug, source_id, write=True)
        limit = settings.DATA_UPLOAD_MAX_BYTES
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > limit + 64 * 1024:
            raise PayloadTooLarge(f"The upload is larger than the limit of {limit:,} bytes.")
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": ["Attach the data as multipart field 'file'."]})
        try:
            ingestion = services.snapshot_upload(actor=request.user, source=source, upload=upload)
        except TooLarge as exc:
            raise PayloadTooLarge(str(exc)) from exc
        except DjangoValidationError as exc:
            raise _invalid(exc) from exc
        code = status.HTTP_200_OK if ingestion.is_done else status.HTTP_202_ACCEPTED
        ingestion = Ingestion.objects.select_related("snapshot", "created_by").get(pk=ingestion.pk)
        return Response(IngestionOutput(ingestion).data, status=code)


class SnapshotDetailApi(APIView):
    @extend_schema(responses=SnapshotOutput)
    def get(self, request: AuthedApiRequest, slug: str, source_id: int, version: int) -> Response:
        _, snapshot = get_snapshot_for_user(request.user, slug, source_id, version)
        return Response(SnapshotOutput(snapshot).data)

    @extend_schema(responses={204: None, 409: None})
    def delete(
        self, request: AuthedApiRequest, slug: str, source_id: int, version: int
    ) -> Response:
        _, snapshot = get_snapshot_for_user(request.user, slug, source_id, version, write=True)
        try:
            services.snapshot_delete(actor=request.user, snapshot=snapshot)
        except services.SourceInUse as exc:
            raise Conflict(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class SnapshotValidateApi(APIView):
    @extend_schema(request=None, responses={202: None})
    def post(self, request: AuthedApiRequest, slug: str, source_id: int, version: int) -> Response:
        _, snapshot = get_snapshot_for_user(request.user, slug, source_id, version, write=True)
        services.snapshot_validate_request(actor=request.user, snapshot=snapshot)
        return Response(
            {"detail": f"Checking version {version} against the current rules."},
            status=status.HTTP_202_ACCEPTED,
        )


class ProfileApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: AuthedApiRequest, slug: str, source_id: int, version: int) -> Response:
        _, snapshot = get_snapshot_for_user(request.user, slug, source_id, version)
        profile = getattr(snapshot, "profile", None)
        if profile is None:
            from django.http import Http404

            raise Http404("No profile for this version.")
        return Response(
            {
                "status": profile.status,
                "target": profile.target,
                "computed_at": profile.computed_at,
                "error": profile.error,
                "profile": profile.data or None,
            }
        )


class SnapshotDownloadApi(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(
        self, request: AuthedApiRequest, slug: str, source_id: int, version: int
    ) -> FileResponse:
        _, snapshot = get_snapshot_for_user(request.user, slug, source_id, version)
        extension = "parquet" if snapshot.data_format == "parquet" else "csv"
        name = f"{snapshot.source.name}-v{snapshot.version}.{extension}".replace(" ", "_")
        response = FileResponse(
            default_store().open(snapshot.storage_key),
            as_attachment=True,
            filename=name,
            content_type="application/octet-stream",
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Length"] = str(snapshot.size)
        return response


# --- Rules -------------------------------------------------------------------------------


class RuleListApi(APIView):
    @extend_schema(responses=RuleOutput(many=True))
    def get(self, request: AuthedApiRequest, slug: str, source_id: int) -> Response:
        _, source = get_source_for_user(request.user, slug, source_id)
        return Response(RuleOutput(source.rules.order_by("pk"), many=True).data)

    @extend_schema(request=RuleInput, responses={201: RuleOutput})
    def post(self, request: AuthedApiRequest, slug: str, source_id: int) -> Response:
        _, source = get_source_for_user(request.user, slug, source_id, write=True)
        data = RuleInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            rule = services.rule_create(actor=request.user, source=source, **data.validated_data)
        except DjangoValidationError as exc:
            raise _invalid(exc) from exc
        return Response(RuleOutput(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(
        self, request: AuthedApiRequest, slug: str, source_id: int, rule_id: int
    ) -> Response:
        _, source = get_source_for_user(request.user, slug, source_id, write=True)
        rule = source.rules.filter(pk=rule_id).first()
        if rule is None:
            from django.http import Http404

            raise Http404("No such rule.")
        rule.source = source
        services.rule_delete(actor=request.user, rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Splits ---------------------------------------------------------------------------------


class SplitCreateApi(APIView):
    @extend_schema(request=SplitInput, responses={202: SplitOutput})
    def post(self, request: AuthedApiRequest, slug: str, source_id: int, version: int) -> Response:
        _, snapshot = get_snapshot_for_user(request.user, slug, source_id, version, write=True)
        data = SplitInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            split = services.split_create(
                actor=request.user,
                snapshot=snapshot,
                **data.validated_data,
            )
        except DjangoValidationError as exc:
            raise _invalid(exc) from exc
        return Response(SplitOutput(split).data, status=status.HTTP_202_ACCEPTED)


class SplitDetailApi(APIView):
    @extend_schema(responses=SplitOutput)
    def get(self, request: AuthedApiRequest, slug: str, source_id: int, split_id: int) -> Response:
        _, split = get_split_for_user(request.user, slug, source_id, split_id)
        return Response(SplitOutput(split).data)
