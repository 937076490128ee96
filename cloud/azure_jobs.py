"""Jobs on Azure ML beyond a plain command: environments, sweeps, AutoML.

Mixed into :class:`cloud.azure.AzureProvider`. Everything is built with
azure-ai-ml's own entities and sent through ``MLClient`` (``jobs``,
``environments``) under the provider's retry schedule (``_call``):

- **Environment.** A job with requirements runs in an Azure ML
  ``Environment`` built on ``environment_image`` from a conda specification:
  Python, pip, the packages the portal's templates and tracking need
  (``BASE_PACKAGES``, unless a requirement names the same package) and the
  job's requirements. Its name is ``sg-<salt>-env`` and its version the hash
  of that specification, so one set of requirements is registered once and
  every later job reuses it (Azure builds its image on first use and caches
  it). A job without requirements runs in ``AZURE_JOB_ENVIRONMENT``.
- **Sweep.** ``JobSpec.sweep`` (the portal's sweep configuration) becomes a
  ``command`` trial whose inputs are ``azure.ai.ml.sweep`` distributions,
  turned into a ``SweepJob`` (``.sweep(...)``): search space, sampling
  algorithm, objective, limits, early termination. What Azure ML cannot do
  is refused with the reason before anything is sent (``sweep_refusal``).
- **AutoML.** ``JobSpec.automl`` becomes ``automl.classification`` or
  ``automl.regression`` on the job's ``train`` input (an MLTable), with the
  charter's metric and the model families under Azure's names
  (``AUTOML_METRICS``, ``AUTOML_ALGORITHMS``), a timeout and a trial limit.
- **Data inputs.** ``upload_inputs`` puts a job's local files (the split's
  parts on the portal's disk) on the workspace's default datastore, once per
  content, and an ``MLTable`` next to an AutoML job's training file; the job
  reads them from there (``azureml://datastores/...``).
- **Trials.** ``job_trials`` lists a sweep's or AutoML job's child jobs
  (the run history's children) and says which is best when the service has
  set ``best_child_run_id``.

The mappings are plain functions of the spec, tested on the SDK's own
serialisation of the entities (``_to_rest_object()``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from azure.ai.ml import Input, automl, command
from azure.ai.ml.entities import (
    AadCredentialConfiguration,
    Environment,
    NoneCredentialConfiguration,
)
from azure.ai.ml.sweep import (
    BayesianSamplingAlgorithm,
    Choice,
    GridSamplingAlgorithm,
    LogUniform,
    MedianStoppingPolicy,
    QUniform,
    RandomSamplingAlgorithm,
    TruncationSelectionPolicy,
    Uniform,
)
from azure.core.exceptions import ResourceNotFoundError
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from cloud.base import (
    AutoMLSpec,
    JobSpec,
    JobState,
    ProviderConfigurationError,
    ProviderError,
    SweepSpec,
)

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

    T = TypeVar("T")

    class _Base:
        name_salt: str
        job_environment: str
        environment_image: str

        _transport: Any
        connect_timeout: float
        read_timeout: float

        @property
        def ml_client(self) -> MLClient: ...
        def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

else:
    _Base = object

# The base image of environments built from requirements (Azure ML's own
# Ubuntu image with conda), and what every such environment has.
ENVIRONMENT_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
PYTHON_VERSION = "3.11"
BASE_PACKAGES = ("mlflow", "azureml-mlflow", "scikit-learn", "pandas", "pyarrow")

# The portal's sampler -> Azure ML's sampling algorithm, and the
# distributions each can sample (Bayesian: choice, uniform and quniform only;
# grid: choice only; a grid's int becomes the choice of every whole number).
SAMPLERS = {"grid": "grid", "random": "random", "tpe": "bayesian"}
SAMPLER_TYPES = {
    "grid": ("choice", "int"),
    "random": ("choice", "uniform", "loguniform", "int"),
    "tpe": ("choice", "uniform", "int"),
}
GRID_MAX_INT_VALUES = 1000
# The local runner's pruners, as Azure ML early termination policies:
# median stopping after one warm-up interval (Optuna's MedianPruner with
# n_warmup_steps=1); successive halving with reduction factor 3 keeps the top
# third at each rung, i.e. truncation selection cancelling 67% each interval.
POLICIES = ("none", "median", "halving")
HALVING_REDUCTION_FACTOR = 3
DIRECTIONS = {"maximize": "maximize", "minimize": "minimize"}
MAX_TRIALS = 1000
# Azure's sweep and AutoML timeouts are whole minutes at most a week (the
# portal's own limit too); AutoML's experiment timeout is at least 15 minutes.
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
AUTOML_MIN_TIMEOUT_MINUTES = 15

# The charter's metric -> Azure AutoML's primary metric, per task. Azure's
# normalised RMSE and MAE rank models as RMSE and MAE do (the same divisor,
# the target's range, for every model of one data set); AUC_weighted is the
# AUC of a binary question. Azure has no F1, log loss or MAPE primary metric.
AUTOML_METRICS: dict[str, dict[str, str]] = {
    "classification": {"accuracy": "accuracy", "roc_auc": "AUC_weighted"},
    "regression": {
        "rmse": "normalized_root_mean_squared_error",
        "mae": "normalized_mean_absolute_error",
        "r2": "r2_score",
    },
}
# The portal's AutoML model families -> Azure AutoML's training algorithms.
# Azure has no histogram gradient boosting: its GradientBoosting (scikit-learn's
# GradientBoosting*) is the nearest; logistic regression is one algorithm on
# Azure, which tunes its penalty (L1 or L2) itself.
AUTOML_ALGORITHMS: dict[str, dict[str, str]] = {
    "classification": {
        "lgbm": "LightGBM",
        "xgboost": "XGBoostClassifier",
        "rf": "RandomForest",
        "extra_tree": "ExtremeRandomTrees",
        "histgb": "GradientBoosting",
        "lrl1": "LogisticRegression",
        "lrl2": "LogisticRegression",
    },
    "regression": {
        "lgbm": "LightGBM",
        "xgboost": "XGBoostRegressor",
        "rf": "RandomForest",
        "extra_tree": "ExtremeRandomTrees",
        "histgb": "GradientBoosting",
        "enet": "ElasticNet",
    },
}

# The Azure ML experiment of sweeps and AutoML jobs (the SDK's default would
# be the name of the worker's working folder).
EXPERIMENT = "stagegate"
_PARAMETER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


# --- environments --------------------------------------------------------------------


def environment_packages(requirements: tuple[str, ...] | list[str]) -> list[str]:
    """The pip packages of a job's environment: the base packages a
    requirement does not name, then the requirements, each once."""
    named: set[str] = set()
    for line in requirements:
        try:
            named.add(canonicalize_name(Requirement(line).name))
        except InvalidRequirement as exc:
            raise ProviderError(f"{line!r} is not a requirement: {exc}") from exc
    base = [p for p in BASE_PACKAGES if canonicalize_name(p) not in named]
    return base + list(dict.fromkeys(requirements))


def conda_specification(requirements: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {
        "name": "stagegate-job",
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={PYTHON_VERSION}",
            "pip",
            {"pip": environment_packages(requirements)},
        ],
    }


def environment_version(image: str, requirements: tuple[str, ...] | list[str]) -> str:
    """The hash that names one environment: its image and conda specification."""
    text = json.dumps([image, conda_specification(sorted(requirements))], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def data_input(path: str) -> Input:
    """A job's data input: a folder when its URI ends with '/', else a file
    (a split's parts are Parquet files, read by the templates as files)."""
    return Input(type="uri_folder" if path.endswith("/") else "uri_file", path=path)


# --- data inputs on the workspace's datastore --------------------------------------

# Where a job's local data inputs go on the workspace's default datastore:
# ``stagegate/inputs/<sha256 of the file>/<input name>.<format>``, so one file
# is uploaded once however many jobs read it, and an AutoML job's MLTable sits
# next to its training file.
UPLOAD_PREFIX = "stagegate/inputs"
PARQUET_MAGIC = b"PAR1"
MLTABLE_SCHEMA = "https://azuremlschemas.azureedge.net/latest/MLTable.schema.json"


def is_local(path: str) -> bool:
    """A path on the portal's disk, not a URI Azure ML can read."""
    return "://" not in path


def file_format(path: str) -> str:
    """``parquet`` (a split's parts) or ``csv``, from the file's first bytes."""
    with open(path, "rb") as f:
        return "parquet" if f.read(4) == PARQUET_MAGIC else "csv"


def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def mltable_text(filename: str, fmt: str) -> str:
    """The ``MLTable`` file of one data file in the same folder (Azure ML's
    MLTable YAML schema: ``paths`` and a read transformation)."""
    if fmt == "parquet":
        read = "  - read_parquet:\n      include_path_column: false\n"
    else:
        read = (
            "  - read_delimited:\n"
            "      delimiter: ','\n"
            "      header: from_first_file\n"
            "      encoding: utf8\n"
        )
    return (
        f"$schema: {MLTABLE_SCHEMA}\n"
        "type: mltable\n"
        "paths:\n"
        f"  - file: ./{filename}\n"
        "transformations:\n"
        f"{read}"
    )


# --- sweeps --------------------------------------------------------------------------


def sweep_refusal(sweep: SweepSpec) -> str:
    """Why Azure ML cannot run this sweep as configured, or "" when it can."""
    if sweep.sampler not in SAMPLERS:
        return f"Azure ML has no sampler {sweep.sampler!r}; choose grid, random or tpe."
    if sweep.direction not in DIRECTIONS:
        return "The direction is maximize or minimize."
    if not sweep.metric:
        return "A sweep needs the metric its trials log."
    if sweep.early_termination not in POLICIES:
        return f"Azure ML has no early termination {sweep.early_termination!r}."
    if sweep.sampler == "tpe" and sweep.early_termination != "none":
        return (
            "Azure ML's Bayesian sampling (tpe) takes no early termination policy; "
            "choose none, or the random sampler."
        )
    if not sweep.space:
        return "The search space is empty."
    allowed = SAMPLER_TYPES[sweep.sampler]
    for name, dimension in sweep.space.items():
        if not _PARAMETER.fullmatch(name):
            return f"{name!r} is not a parameter name Azure ML takes."
        kind = dimension.get("type")
        if kind not in allowed:
            what = {"tpe": "Bayesian (tpe)", "grid": "grid", "random": "random"}[sweep.sampler]
            return (
                f"{name}: Azure ML's {what} sampling takes {', '.join(allowed)} "
                f"distributions, not {kind}."
            )
        if kind == "choice" and not dimension.get("values"):
            return f"{name}: a choice needs values."
        if kind != "choice" and not dimension.get("low", 0) < dimension.get("high", 0):
            return f"{name}: low must be below high."
        if kind == "loguniform" and dimension["low"] <= 0:
            return f"{name}: a log-uniform distribution needs low above 0."
        if (
            sweep.sampler == "grid"
            and kind == "int"
            and dimension["high"] - dimension["low"] + 1 > GRID_MAX_INT_VALUES
        ):
            return f"{name}: a grid takes at most {GRID_MAX_INT_VALUES} whole numbers."
    if not 1 <= sweep.max_trials <= MAX_TRIALS:
        return f"Azure ML runs between 1 and {MAX_TRIALS} trials."
    if not 1 <= sweep.parallel <= sweep.max_trials:
        return "Trials in parallel: at least 1, at most the number of trials."
    if not 0 <= sweep.time_budget_seconds <= MAX_TIMEOUT_SECONDS:
        return "The time budget is at most a week."
    return ""


def sweep_distribution(dimension: dict[str, Any], sampler: str) -> Any:
    """One parameter's distribution as an ``azure.ai.ml.sweep`` entity.

    Azure's ``LogUniform(min_value, max_value)`` samples ``exp(uniform(min,
    max))``: its bounds are the logarithms of the portal's. An int range is
    ``QUniform(low, high, q=1)`` (whole numbers from low to high), and every
    whole number as a choice for a grid."""
    kind = dimension["type"]
    if kind == "choice":
        return Choice(values=list(dimension["values"]))
    low, high = dimension["low"], dimension["high"]
    if kind == "int":
        if sampler == "grid":
            return Choice(values=list(range(int(low), int(high) + 1)))
        return QUniform(min_value=int(low), max_value=int(high), q=1)
    if kind == "loguniform":
        return LogUniform(min_value=math.log(low), max_value=math.log(high))
    return Uniform(min_value=low, max_value=high)


def sweep_sampling(sweep: SweepSpec) -> Any:
    if sweep.sampler == "grid":
        return GridSamplingAlgorithm()
    if sweep.sampler == "tpe":
        return BayesianSamplingAlgorithm()
    return RandomSamplingAlgorithm(seed=sweep.seed or None)


def sweep_policy(sweep: SweepSpec) -> Any:
    if sweep.early_termination == "median":
        return MedianStoppingPolicy(delay_evaluation=1, evaluation_interval=1)
    if sweep.early_termination == "halving":
        cancelled = round(100 * (1 - 1 / HALVING_REDUCTION_FACTOR))
        return TruncationSelectionPolicy(
            delay_evaluation=1, evaluation_interval=1, truncation_percentage=cancelled
        )
    return None


def input_assignments(inputs: tuple[str, ...]) -> str:
    """``SG_INPUT_<NAME>=${{inputs.<name>}}`` for each data input, space-separated.

    Azure ML documents ``${{inputs.<name>}}`` (replaced with the input's path
    on the compute) in a job's command, not in its ``environment_variables``,
    so the variables the local provider sets are assigned in the command."""
    for name in inputs:
        if not _PARAMETER.fullmatch(name):
            raise ProviderError(f"{name!r} is not an input name Azure ML takes")
    return " ".join(f"SG_INPUT_{name.upper()}=${{{{inputs.{name}}}}}" for name in inputs)


def command_with_inputs(command_line: str, inputs: tuple[str, ...]) -> str:
    """A command job's command, its data inputs exported first as ``SG_INPUT_<NAME>``
    (``export``, so that every part of a compound command sees them)."""
    if not inputs:
        return command_line
    return f"export {input_assignments(inputs)}; {command_line}"


def trial_command(sweep: SweepSpec, inputs: tuple[str, ...] = ()) -> str:
    """The trial's command: the spec's, with the sampled values as ``--params``
    (a JSON object Azure fills in: ``${{inputs.x}}`` becomes the sampled number),
    and each data input's path in ``SG_INPUT_<NAME>`` as the local provider sets it."""
    for name in sweep.space:
        if not _PARAMETER.fullmatch(name):
            raise ProviderError(f"{name!r} is not an input name Azure ML takes")
    paths = f"{input_assignments(inputs)} " if inputs else ""
    fields = ", ".join(f'"{name}": ${{{{inputs.{name}}}}}' for name in sweep.space)
    return f"{paths}{sweep.trial_command} --params='{{{fields}}}'"


# --- AutoML --------------------------------------------------------------------------


def automl_refusal(spec: AutoMLSpec, inputs: dict[str, str]) -> str:
    """Why Azure AutoML cannot run this search as configured, or ""."""
    if spec.task not in AUTOML_METRICS:
        return f"Azure AutoML here answers classification or regression, not {spec.task!r}."
    metrics = AUTOML_METRICS[spec.task]
    if spec.metric not in metrics:
        return (
            f"Azure AutoML cannot optimise {spec.metric!r} for {spec.task}; "
            f"it optimises {', '.join(metrics)} here."
        )
    algorithms = AUTOML_ALGORITHMS[spec.task]
    for family in spec.families:
        if family not in algorithms:
            return (
                f"{family!r} is not a model family Azure AutoML has for {spec.task}; "
                f"choose from {', '.join(algorithms)}."
            )
    if not spec.target:
        return "AutoML needs the charter's target column."
    if "train" not in inputs:
        return "AutoML needs the training data as the job's train input (an MLTable)."
    minutes = math.ceil(spec.time_budget_seconds / 60)
    if not AUTOML_MIN_TIMEOUT_MINUTES <= minutes <= MAX_TIMEOUT_SECONDS // 60:
        return (
            f"Azure AutoML's time budget is between {AUTOML_MIN_TIMEOUT_MINUTES} minutes "
            "and a week."
        )
    if spec.max_trials < 0 or spec.parallel < 1:
        return "Trials: a limit of 0 (none) or more, and at least 1 at a time."
    return ""


def automl_algorithms(spec: AutoMLSpec) -> list[str]:
    """Azure's names of the chosen families, each once (all the task's when none)."""
    algorithms = AUTOML_ALGORITHMS[spec.task]
    return list(dict.fromkeys(algorithms[f] for f in spec.families or algorithms))


# --- the mixin --------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One child job of a sweep or AutoML job."""

    name: str
    state: JobState
    detail: str = ""
    best: bool = False


class AzureJobsMixin(_Base):
    """Environments from requirements, sweep and AutoML jobs, their trials."""

    @property
    def environment_name(self) -> str:
        return f"sg-{self.name_salt}-env"

    def build_environment(self, requirements: tuple[str, ...]) -> Environment:
        """The ``Environment`` of a set of requirements (not yet sent anywhere)."""
        return Environment(
            name=self.environment_name,
            version=environment_version(self.environment_image, requirements),
            description="Stagegate job environment: base packages and the job's requirements",
            image=self.environment_image,
            conda_file=conda_specification(requirements),
            tags={"stagegate": "environment"},
        )

    def environment_id(self, spec: JobSpec) -> str:
        """The environment a job runs in: built from its requirements, or the default."""
        if spec.requirements:
            version = environment_version(self.environment_image, spec.requirements)
            return f"azureml:{self.environment_name}:{version}"
        if not self.job_environment:
            raise ProviderConfigurationError("Set AZURE_JOB_ENVIRONMENT to submit jobs")
        return self.job_environment

    def environment_ensure(self, requirements: tuple[str, ...]) -> str:
        """Register the environment of ``requirements`` unless it exists; its id."""
        environment = self.build_environment(requirements)
        name, version = str(environment.name), str(environment.version)
        environments = self.ml_client.environments
        try:
            self._call(f"get environment {name}:{version}", environments.get, name, version)
        except ResourceNotFoundError:
            self._call(
                f"create environment {name}:{version}", environments.create_or_update, environment
            )
        return f"azureml:{name}:{version}"

    def _datastore(self) -> tuple[str, Any]:
        """The workspace's default datastore: its name and a ``ContainerClient``
        on its container, with the datastore's own secret (a SAS token or the
        account key, as ``listSecrets`` answers) or, for an identity-based
        datastore, the provider's credential; no retries of its own, bounded
        requests (``_call`` retries), through the provider's transport."""
        from azure.core.credentials import AzureSasCredential
        from azure.storage.blob import BlobServiceClient

        datastores = self.ml_client.datastores

        def default() -> Any:
            try:
                return datastores.get_default()
            except StopIteration:  # the SDK's pager found none
                return None

        store = self._call("get the default datastore", default)
        if store is None:
            raise ProviderError("The Azure ML workspace has no default datastore to upload to")
        kind = str(getattr(store.type, "value", store.type) or "")
        if kind != "AzureBlob":
            raise ProviderError(
                f"The workspace's default datastore {store.name!r} is {kind}, not Azure Blob "
                "storage: the portal uploads job inputs to a blob datastore only"
            )
        name = str(store.name)
        account = str(store.account_name)
        credential: Any = self.ml_client._credential
        if not isinstance(
            store.credentials, NoneCredentialConfiguration | AadCredentialConfiguration
        ):
            secrets = self._call(
                f"list the secrets of datastore {name}",
                datastores._list_secrets,
                name=name,
                expirable_secret=True,
            )
            sas = getattr(secrets, "sas_token", None)
            key = getattr(secrets, "key", None)
            if sas:
                credential = AzureSasCredential(sas)
            elif key:
                credential = {"account_name": account, "account_key": key}
        options: dict[str, Any] = {
            "retry_total": 0,
            "connection_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }
        if self._transport is not None:
            options["transport"] = self._transport
        protocol = str(store.protocol or "https")
        endpoint = str(store.endpoint or "core.windows.net")
        service = BlobServiceClient(
            f"{protocol}://{account}.blob.{endpoint}", credential=credential, **options
        )
        return name, service.get_container_client(str(store.container_name))

    def _upload(self, container: Any, blob: str, data: Any, length: int) -> None:
        """Upload one blob unless it is there with that size (names are content hashes)."""
        client = container.get_blob_client(blob)

        def upload() -> None:
            try:
                if client.get_blob_properties().size == length:
                    return
            except ResourceNotFoundError:
                pass
            if hasattr(data, "seek"):
                data.seek(0)
            client.upload_blob(data, length=length, overwrite=True)

        self._call(f"upload {blob}", upload)

    def upload_inputs(self, spec: JobSpec) -> dict[str, str]:
        """The spec's inputs as URIs Azure ML can read: each local file
        uploaded to the workspace's default datastore (once per content),
        other URIs as they are. An AutoML job's ``train`` file gets an
        ``MLTable`` file next to it, and its input is that folder (its other
        inputs are not uploaded: AutoML reads none)."""
        local = {k: v for k, v in spec.inputs.items() if is_local(v)}
        if spec.automl is not None:  # AutoML reads its train input only
            local = {k: v for k, v in local.items() if k == "train"}
        if not local:
            return dict(spec.inputs)
        datastore, container = self._datastore()
        out = dict(spec.inputs)
        for input_name, path in local.items():
            if not os.path.isfile(path):
                raise ProviderError(
                    f"The {input_name} input {path!r} is not a file on this machine"
                )
            fmt = file_format(path)
            folder = f"{UPLOAD_PREFIX}/{file_sha256(path)}"
            filename = f"{input_name}.{fmt}"
            with open(path, "rb") as f:
                self._upload(container, f"{folder}/{filename}", f, os.path.getsize(path))
            uri = f"azureml://datastores/{datastore}/paths/{folder}/"
            if spec.automl is not None and input_name == "train":
                table = mltable_text(filename, fmt).encode()
                self._upload(container, f"{folder}/MLTable", table, len(table))
                out[input_name] = uri
            else:
                out[input_name] = uri + filename
        return out

    def build_sweep(
        self, spec: JobSpec, *, environment_variables: dict[str, str], tags: dict[str, str]
    ) -> Any:
        """The ``SweepJob`` of a spec with ``sweep`` (not yet sent anywhere)."""
        sweep = spec.sweep
        assert sweep is not None
        refusal = sweep_refusal(sweep)
        if refusal:
            raise ProviderError(f"Azure ML cannot run this sweep: {refusal}")
        clash = set(sweep.space) & set(spec.inputs)
        if clash:
            raise ProviderError(f"{sorted(clash)[0]!r} is both a data input and a parameter")
        trial = command(
            name=spec.name,
            display_name=spec.name,
            command=trial_command(sweep, tuple(spec.inputs)),
            code=spec.code_dir or None,
            environment=self.environment_id(spec),
            environment_variables=environment_variables,
            compute=spec.compute,
            inputs={
                **{k: data_input(v) for k, v in spec.inputs.items()},
                **dict.fromkeys(sweep.space, 0),
            },
        )
        distributions = {
            name: sweep_distribution(dimension, sweep.sampler)
            for name, dimension in sweep.space.items()
        }
        builder = trial(**distributions).sweep(
            primary_metric=sweep.metric,
            goal=DIRECTIONS[sweep.direction],
            sampling_algorithm=sweep_sampling(sweep),
            max_total_trials=sweep.max_trials,
            max_concurrent_trials=sweep.parallel,
            timeout=sweep.time_budget_seconds or None,
            early_termination_policy=sweep_policy(sweep),
        )
        job = builder._to_job()
        job.name = spec.name
        job.display_name = spec.name
        job.tags = tags
        job.experiment_name = EXPERIMENT
        return job

    def build_automl(self, spec: JobSpec, *, tags: dict[str, str]) -> Any:
        """The AutoML ``ClassificationJob`` or ``RegressionJob`` (not yet sent)."""
        settings = spec.automl
        assert settings is not None
        refusal = automl_refusal(settings, spec.inputs)
        if refusal:
            raise ProviderError(f"Azure AutoML cannot run this search: {refusal}")
        factory = automl.classification if settings.task == "classification" else automl.regression
        job = factory(
            name=spec.name,
            display_name=spec.name,
            compute=spec.compute,
            training_data=Input(type="mltable", path=spec.inputs["train"]),
            target_column_name=settings.target,
            primary_metric=AUTOML_METRICS[settings.task][settings.metric],
            tags=tags,
            experiment_name=EXPERIMENT,
        )
        job.set_limits(
            timeout_minutes=math.ceil(settings.time_budget_seconds / 60),
            max_trials=settings.max_trials or None,
            max_concurrent_trials=settings.parallel,
            enable_early_termination=True,
        )
        job.set_training(allowed_training_algorithms=automl_algorithms(settings))
        return job

    def job_trials(self, name: str) -> list[Trial]:
        """A sweep's or AutoML job's trials (its child jobs), the best marked
        when the service has named it (``best_child_run_id``)."""
        from cloud.azure import JOB_STATES, _enum_value

        jobs = self.ml_client.jobs
        try:
            parent = self._call(f"get job {name}", jobs.get, name)
            # What ``jobs.list(parent_job_name=...)`` calls, without its second GET.
            children = self._call(
                f"list trials of {name}",
                lambda: list(jobs._runs_operations.get_run_children(name)),
            )
        except ResourceNotFoundError as exc:
            raise ProviderError(f"No job {name!r}") from exc
        best = str((parent.properties or {}).get("best_child_run_id") or "")
        out = []
        for child in children:
            if child is None:
                continue
            raw = str(_enum_value(child.status) or "")
            out.append(
                Trial(
                    str(child.name),
                    JOB_STATES.get(raw.lower(), JobState.QUEUED),
                    detail=raw,
                    best=bool(best) and child.name == best,
                )
            )
        return out

    def trials_summary(self, name: str, tail: int = 200) -> str:
        """One line per trial (the last ``tail``): its name and Azure's state,
        the best one marked; "" for a job without trials."""
        lines = [
            f"trial {t.name}: {t.detail or 'state unknown'}{' (best so far)' if t.best else ''}"
            for t in self.job_trials(name)
        ]
        return "\n".join(lines[-tail:]) if tail > 0 else ""
