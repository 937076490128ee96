"""The sweeps and AutoML API: ``/api/projects/<slug>/sweeps/`` and
``/api/projects/<slug>/automl/`` (create, list, get, cancel).

Each is carried out by one training job (its ``job`` field; its logs are the
job's, under ``/api/projects/<slug>/jobs/<id>/logs/``). Bad input answers 400
with the reason per field, a project whose charter is not signed off 409 with
``charter_url``, cancelling a finished one 409; none of them changes anything.
"""

from __future__ import annotations

import copy
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.http import AuthedApiRequest
from charter.api import GateRefusalOutput, gate_refused
from charter.gates import CharterNotSignedOff
from compute import selectors as compute_selectors
from compute.models import ComputeSize
from experiments import jobs, sweeps
from experiments.job_selectors import splits_ready
from experiments.jobs_api import JobCreateInput
from experiments.sweep_models import Sweep, SweepKind
from experiments.sweep_selectors import (
    get_sweep_for_user,
    leaderboard,
    sweep_progress,
    sweeps_for_project,
)
from projects.permissions import get_project_for_user
from web.api import paginated, validation_detail


class SweepOutput(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True, help_text="sweep or automl")
    name = serializers.CharField(source="job.name", read_only=True)
    state = serializers.CharField(source="job.state", read_only=True)
    state_label = serializers.CharField(source="job.get_state_display", read_only=True)
    state_reason = serializers.CharField(source="job.state_reason", read_only=True)
    size = serializers.CharField(source="job.size.name", read_only=True)
    split = serializers.IntegerField(source="job.split_id", read_only=True)
    run_id = serializers.CharField(source="job.run.uuid", read_only=True, default=None)
    created_by = serializers.CharField(source="job.created_by.username", read_only=True)
    cost = serializers.DecimalField(
        source="job.cost", max_digits=12, decimal_places=4, read_only=True
    )

    class Meta:
        model = Sweep
        fields = [
            "id",
            "kind",
            "name",
            "job",
            "state",
            "state_label",
            "state_reason",
            "config",
            "size",
            "split",
            "run_id",
            "created_by",
            "created_at",
            "cost",
        ]
        read_only_fields = fields


class TrialOutput(serializers.Serializer):
    number = serializers.IntegerField()
    run_id = serializers.CharField()
    name = serializers.CharField()
    state = serializers.CharField(help_text="running, finished, pruned or failed")
    params = serializers.DictField(child=serializers.CharField())
    metrics = serializers.DictField(child=serializers.FloatField())
    value = serializers.FloatField(allow_null=True)
    pruned = serializers.CharField(help_text="Why early termination stopped it, if it did.")


class ProgressOutput(serializers.Serializer):
    metric = serializers.CharField()
    planned = serializers.IntegerField(allow_null=True)
    done = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField())
    best = TrialOutput(allow_null=True)
    trials = TrialOutput(many=True)
    compare_url = serializers.CharField()


class SweepDetailOutput(SweepOutput):
    progress = serializers.SerializerMethodField()

    class Meta(SweepOutput.Meta):
        fields = [*SweepOutput.Meta.fields, "progress"]
        read_only_fields = fields

    @extend_schema_field(ProgressOutput)
    def get_progress(self, sweep: Sweep) -> dict[str, Any]:
        progress = sweep_progress(sweep=sweep)
        trials = leaderboard(progress) if sweep.kind == SweepKind.AUTOML else progress.trials
        ids = ",".join(progress.run_ids[:500])
        return ProgressOutput(
            {
                "metric": progress.metric,
                "planned": progress.planned,
                "done": progress.done,
                "counts": progress.counts,
                "best": progress.best,
                "trials": trials,
                "compare_url": (
                    f"/projects/{sweep.project.slug}/experiments/compare/?runs={ids}" if ids else ""
                ),
            }
        ).data


class SweepCreateInput(serializers.Serializer):
    split = serializers.IntegerField()
    size = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(
        choices=jobs.KINDS,
        default="template",
        help_text="template: the baseline's hyperparameters; repository: your script from "
        "`repository_url` at `repository_ref`; archive: from the zip or tar.gz sent as "
        "`archive` (multipart, with `space` as a JSON string).",
    )
    # The code's fields are the jobs API's (one definition).
    repository_url = copy.deepcopy(JobCreateInput._declared_fields["repository_url"])
    repository_ref = copy.deepcopy(JobCreateInput._declared_fields["repository_ref"])
    archive = copy.deepcopy(JobCreateInput._declared_fields["archive"])
    command = serializers.CharField(
        max_length=jobs.COMMAND_MAX,
        allow_blank=True,
        default="",
        help_text="What runs one trial of your code, in its folder (e.g. `python train.py`); "
        "each trial appends its parameters as `--name=value` and logs the objective's metric "
        "into the run `MLFLOW_RUN_ID`.",
    )
    requirements = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=200,
        default=list,
        help_text="Packages on top of the base environment (your code only).",
    )
    space = serializers.JSONField(
        help_text=(
            'Parameter name to distribution: {"type": "choice", "values": [...]}, or '
            '{"type": "uniform" | "loguniform" | "int", "low": a, "high": b}. Over the '
            "baseline: the model family's hyperparameters; over your code: any names "
            "(a letter or _, then letters, digits or _), choices may be words."
        )
    )
    family = serializers.ChoiceField(choices=list(sweeps.HYPERPARAMETERS), default="gbm")
    sampler = serializers.ChoiceField(choices=list(sweeps.SAMPLERS), default="tpe")
    metric = serializers.CharField(
        max_length=250,
        allow_blank=True,
        default="",
        help_text="Default: the charter's metric. Over your code: the metric your script logs.",
    )
    direction = serializers.ChoiceField(
        choices=["", *sweeps.DIRECTIONS],
        default="",
        help_text="Default: the charter's direction.",
    )
    max_trials = serializers.IntegerField(default=20)
    parallel = serializers.IntegerField(default=1)
    early_termination = serializers.ChoiceField(choices=list(sweeps.POLICIES), default="median")
    time_budget_minutes = serializers.IntegerField(default=30)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    wall_clock_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, default=60)
    experiment_name = serializers.CharField(max_length=250, allow_blank=True, default="")
    name = serializers.CharField(max_length=100, allow_blank=True, default="")


class AutoMLCreateInput(serializers.Serializer):
    split = serializers.IntegerField()
    size = serializers.CharField(max_length=64)
    time_budget_seconds = serializers.IntegerField(default=300)
    families = serializers.ListField(
        child=serializers.ChoiceField(choices=list(sweeps.AUTOML_FAMILIES)),
        default=list,
        help_text="Default: every family that answers the charter's question.",
    )
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    wall_clock_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, default=60)
    experiment_name = serializers.CharField(max_length=250, allow_blank=True, default="")
    name = serializers.CharField(max_length=100, allow_blank=True, default="")


def _size_named(name: str) -> ComputeSize:
    size = compute_selectors.sizes_offered().filter(name=name).first()
    if size is None:
        raise ValidationError({"size": [f"No offered size named {name!r}."]})
    return size


def _detail(sweep: Sweep, code: int = status.HTTP_200_OK) -> Response:
    fresh = sweeps_for_project(project=sweep.project).get(pk=sweep.pk)
    return Response(SweepDetailOutput(fresh).data, status=code)


def _create(request: AuthedApiRequest, slug: str, kind: str) -> Response:
    project, _ = get_project_for_user(request.user, slug, write=True)
    data = (SweepCreateInput if kind == SweepKind.SWEEP else AutoMLCreateInput)(data=request.data)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    split = splits_ready(project=project).filter(pk=values.pop("split")).first()
    if split is None:
        raise ValidationError({"split": ["No ready split of this project with that id."]})
    values["size"] = _size_named(values["size"])
    create = sweeps.sweep_create if kind == SweepKind.SWEEP else sweeps.automl_create
    try:
        sweep = create(actor=request.user, project=project, split=split, **values)
    except DjangoValidationError as exc:
        raise ValidationError(validation_detail(exc)) from exc
    except CharterNotSignedOff as exc:
        return gate_refused(exc)
    return _detail(sweep, status.HTTP_201_CREATED)


class _ListApi(APIView):
    kind = SweepKind.SWEEP

    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        project, _ = get_project_for_user(request.user, slug)
        rows = sweeps_for_project(project=project, kind=self.kind)
        return paginated(request, self, rows, SweepOutput)

    def post(self, request: AuthedApiRequest, slug: str) -> Response:
        return _create(request, slug, self.kind)


class _DetailApi(APIView):
    kind = SweepKind.SWEEP

    def get(self, request: AuthedApiRequest, slug: str, sweep_id: int) -> Response:
        sweep, _ = get_sweep_for_user(request.user, slug, sweep_id, kind=self.kind)
        return Response(SweepDetailOutput(sweep).data)


class _CancelApi(APIView):
    kind = SweepKind.SWEEP

    def post(self, request: AuthedApiRequest, slug: str, sweep_id: int) -> Response:
        sweep, _ = get_sweep_for_user(request.user, slug, sweep_id, kind=self.kind, write=True)
        try:
            sweeps.sweep_cancel(actor=request.user, sweep=sweep)
        except jobs.JobConflict as exc:
            return Response(
                {"detail": str(exc), "state": exc.state}, status=status.HTTP_409_CONFLICT
            )
        return _detail(sweep, status.HTTP_202_ACCEPTED)


CREATED = {201: SweepDetailOutput, 409: GateRefusalOutput}


class SweepListApi(_ListApi):
    @extend_schema(responses=SweepOutput(many=True), description="The project's sweeps.")
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        return super().get(request, slug)

    @extend_schema(
        request=SweepCreateInput,
        responses=CREATED,
        description=(
            "Start a hyperparameter sweep (Optuna) on a ready split, run by one training job: "
            "of the baseline template over its model's hyperparameters, or of your own code "
            "(`kind` repository or archive, with `command`) over any parameters it takes as "
            "`--name=value`, ranked by the metric it logs into each trial's run; a "
            "sampler, an objective (default: the charter's metric and direction), at most "
            "`max_trials` trials, `parallel` at a time (at most the size's vCPUs), early "
            "termination and a time budget. A bad search space is answered 400 with the reason."
        ),
    )
    def post(self, request: AuthedApiRequest, slug: str) -> Response:
        return super().post(request, slug)


class SweepDetailApi(_DetailApi):
    @extend_schema(responses=SweepDetailOutput)
    def get(self, request: AuthedApiRequest, slug: str, sweep_id: int) -> Response:
        return super().get(request, slug, sweep_id)


class SweepCancelApi(_CancelApi):
    @extend_schema(request=None, responses={202: SweepDetailOutput})
    def post(self, request: AuthedApiRequest, slug: str, sweep_id: int) -> Response:
        return super().post(request, slug, sweep_id)


class AutoMLListApi(_ListApi):
    kind = SweepKind.AUTOML

    @extend_schema(responses=SweepOutput(many=True), description="The project's AutoML runs.")
    def get(self, request: AuthedApiRequest, slug: str) -> Response:
        return super().get(request, slug)

    @extend_schema(
        request=AutoMLCreateInput,
        responses=CREATED,
        description=(
            "Start an AutoML search (FLAML) for the charter's question, target and metric on "
            "a ready split, run by one training job, within a time budget and over the allowed "
            "model families. The leaderboard is the job's run's child runs; the best model is "
            "logged in MLflow format on the job's run."
        ),
    )
    def post(self, request: AuthedApiRequest, slug: str) -> Response:
        return super().post(request, slug)


class AutoMLDetailApi(_DetailApi):
    kind = SweepKind.AUTOML

    @extend_schema(responses=SweepDetailOutput)
    def get(self, request: AuthedApiRequest, slug: str, sweep_id: int) -> Response:
        return super().get(request, slug, sweep_id)


class AutoMLCancelApi(_CancelApi):
    kind = SweepKind.AUTOML

    @extend_schema(request=None, responses={202: SweepDetailOutput})
    def post(self, request: AuthedApiRequest, slug: str, sweep_id: int) -> Response:
        return super().post(request, slug, sweep_id)
