"""The training jobs API under ``/api/projects/<slug>/jobs/``: create, list,
get, cancel, re-run, logs.

Bad input answers 400 with the reason, an action that does not fit the job's
state 409 with the state, a project whose charter is not signed off 409 with
``charter_url``; none of them changes anything.
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
from compute import selectors as compute_selectors
from compute.models import ComputeSize
from experiments import jobs
from experiments.job_models import Job
from experiments.job_permissions import get_job_for_user
from experiments.job_selectors import jobs_for_project, splits_ready
from projects.permissions import get_project_for_user
from web.api import paginated, validation_detail


class JobOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    size = serializers.CharField(source="size.name", read_only=True)
    run_id = serializers.CharField(source="run.uuid", read_only=True, default=None)
    experiment_id = serializers.CharField(source="run.experiment_id", read_only=True, default=None)
    state_label = serializers.CharField(source="get_state_display", read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "kind",
            "template",
            "code_digest",
            "repository_url",
            "repository_ref",
            "repository_commit",
            "command",
            "requirements",
            "parameters",
            "split",
            "snapshot",
            "size",
            "wall_clock_max_seconds",
            "state",
            "state_label",
            "state_reason",
            "exit_code",
            "created_by",
            "created_at",
            "started_at",
            "ended_at",
            "duration_seconds",
            "cost",
            "run_id",
            "experiment_id",
            "rerun_of",
            "approval",
        ]


class JobCreateInput(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=jobs.KINDS,
        default="template",
        help_text="template: a built-in template; repository: `repository_url` at "
        "`repository_ref`; archive: the zip or tar.gz sent as `archive` (multipart).",
    )
    template = serializers.ChoiceField(choices=sorted(jobs.TEMPLATES), default="baseline")
    split = serializers.IntegerField(min_value=1)
    size = serializers.CharField(max_length=64)
    family = serializers.ChoiceField(choices=jobs.FAMILIES, default="gbm")
    model = serializers.ChoiceField(
        choices=jobs.MODELS, default="sklearn", help_text="The template's library."
    )
    repository_url = serializers.CharField(max_length=500, allow_blank=True, default="")
    repository_ref = serializers.CharField(max_length=255, allow_blank=True, default="main")
    archive = serializers.FileField(required=False, allow_empty_file=False)
    command = serializers.CharField(
        max_length=jobs.COMMAND_MAX,
        allow_blank=True,
        default="",
        help_text="What runs the code, in its folder (repository and archive jobs).",
    )
    requirements = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=200,
        default=list,
        help_text="Packages on top of the base environment, e.g. `lightgbm==4.7.0`.",
    )
    wall_clock_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, default=60)
    experiment_name = serializers.CharField(max_length=250, allow_blank=True, default="")
    name = serializers.CharField(max_length=100, allow_blank=True, default="")


class JobRerunInput(serializers.Serializer):
    size = serializers.CharField(max_length=64, required=False)
    family = serializers.ChoiceField(choices=jobs.FAMILIES, required=False)
    model = serializers.ChoiceField(choices=jobs.MODELS, required=False)
    command = serializers.CharField(max_length=jobs.COMMAND_MAX, required=False)


class JobLogsOutput(serializers.Serializer):
    state = serializers.CharField()
    finished = serializers.BooleanField()
    log = serializers.CharField(help_text="The last lines of the job's output.")


def _call(fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except DjangoValidationError as exc:
        raise ValidationError(validation_detail(exc)) from exc


def _size_named(name: str) -> ComputeSize:
    size = compute_selectors.sizes_offered().filter(name=name).first()
    if size is None:
        raise ValidationError({"size": [f"No offered size named {name!r}."]})
    return size


def _conflict(exc: jobs.JobConflict) -> Response:
    return Response({"detail": str(exc), "state": exc.state}, status=status.HTTP_409_CONFLICT)


def _detail(job: Job, code: int = status.HTTP_200_OK) -> Response:
    fresh = Job.objects.select_related("created_by", "size", "run").get(pk=job.pk)
    return Response(JobOutput(fresh).data, status=code)


class JobListApi(APIView):
    @extend_schema(responses=JobOutput(many=True))
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        return paginated(request, self, jobs_for_project(project=project), JobOutput)

    @extend_schema(
        request=JobCreateInput,
        responses={201: JobOutput, 409: GateRefusalOutput},
        description=(
            "Start a training job on a ready split of the project: a built-in template, "
            "a git repository (fetched by the worker) or an uploaded archive (multipart). "
            "Within quota it is queued; beyond it it waits for a platform admin's approval. "
            "A project whose charter is not signed off is answered 409 with `charter_url`."
        ),
    )
    def post(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug, write=True)
        data = JobCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        split = splits_ready(project=project).filter(pk=values.pop("split")).first()
        if split is None:
            raise ValidationError({"split": ["No ready split of this project with that id."]})
        values["size"] = _size_named(values["size"])
        try:
            job = _call(jobs.job_create, actor=request.user, project=project, split=split, **values)
        except CharterNotSignedOff as exc:
            return gate_refused(exc)
        return _detail(job, status.HTTP_201_CREATED)


class JobDetailApi(APIView):
    @extend_schema(responses=JobOutput)
    def get(self, request: AuthedApiRequest, slug: str, job_id: int) -> Response:
        job, _ = get_job_for_user(request.user, slug, job_id)
        return Response(JobOutput(job).data)


class JobCancelApi(APIView):
    @extend_schema(request=None, responses={202: JobOutput})
    def post(self, request: AuthedApiRequest, slug: str, job_id: int) -> Response:
        job, _ = get_job_for_user(request.user, slug, job_id, write=True)
        try:
            _call(jobs.job_cancel, actor=request.user, job=job)
        except jobs.JobConflict as exc:
            return _conflict(exc)
        return _detail(job, status.HTTP_202_ACCEPTED)


class JobRerunApi(APIView):
    @extend_schema(request=JobRerunInput, responses={201: JobOutput, 409: GateRefusalOutput})
    def post(self, request: AuthedApiRequest, slug: str, job_id: int) -> Response:
        job, _ = get_job_for_user(request.user, slug, job_id, write=True)
        data = JobRerunInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "size" in values:
            values["size"] = _size_named(values["size"])
        try:
            again = _call(jobs.job_rerun, actor=request.user, job=job, **values)
        except CharterNotSignedOff as exc:
            return gate_refused(exc)
        return _detail(again, status.HTTP_201_CREATED)


class JobLogsApi(APIView):
    @extend_schema(responses=JobLogsOutput)
    def get(self, request: AuthedApiRequest, slug: str, job_id: int) -> Response:
        job, _ = get_job_for_user(request.user, slug, job_id)
        return Response(
            JobLogsOutput({"state": job.state, "finished": job.finished, "log": job.log_tail}).data
        )
