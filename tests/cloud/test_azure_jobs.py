"""Azure ML jobs beyond a plain command: environments from requirements,
sweep jobs and AutoML jobs, their state, cancel, logs and trials.

As in ``test_azure.py``: a real ``azure.ai.ml.MLClient`` over the HTTP test
double (``tests/cloud/azure_transport.py``); the assertions are on the REST
bodies the SDK's own entities serialise to and on what the provider makes of
the answers. Bad configurations are refused with the reason before any
request is sent.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from azure.ai.ml.automl import (
    ClassificationModels,
    ClassificationPrimaryMetrics,
    RegressionModels,
    RegressionPrimaryMetrics,
)

from cloud.azure import AzureProvider
from cloud.azure_jobs import (
    AUTOML_ALGORITHMS,
    AUTOML_METRICS,
    BASE_PACKAGES,
    ENVIRONMENT_IMAGE,
    SAMPLER_TYPES,
    automl_refusal,
    environment_version,
    sweep_refusal,
)
from cloud.base import (
    AutoMLSpec,
    JobSpec,
    JobState,
    ProviderError,
    SweepSpec,
    cluster_name,
    job_name,
)
from tests.cloud.azure_transport import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    WS_PATH,
    FakeAzureML,
)
from tests.cloud.test_azure import FakeCredential

SALT = "k7q"
CL = cluster_name(1, SALT)
JOB = job_name(1, SALT)
CURATED = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
TRAIN = "azureml://datastores/snapshots/paths/ab12/train.parquet"
TEST = "azureml://datastores/snapshots/paths/ab12/test.parquet"
TRIAL = "python baseline.py --task=classification --target=churn --metric=roc_auc --family=gbm"
SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "loguniform", "low": 0.01, "high": 0.3},
    "l2_regularization": {"type": "uniform", "low": 0.0, "high": 2.5},
    "min_samples_leaf": {"type": "int", "low": 5, "high": 200},
    "max_depth": {"type": "choice", "values": [2, 3, 4]},
}


@pytest.fixture
def azure() -> FakeAzureML:
    return FakeAzureML()


def provider_on(azure: FakeAzureML) -> AzureProvider:
    return AzureProvider(
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        workspace=WORKSPACE,
        name_salt=SALT,
        job_environment=CURATED,
        credential=FakeCredential(),
        transport=azure,
        sleep=lambda seconds: None,
        rng=random.Random(7),
    )


@pytest.fixture
def provider(azure: FakeAzureML) -> AzureProvider:
    return provider_on(azure)


def sweep(**kwargs: Any) -> SweepSpec:
    values: dict[str, Any] = {
        "trial_command": TRIAL,
        "space": SPACE,
        "metric": "roc_auc",
        "direction": "maximize",
        "sampler": "random",
        "max_trials": 8,
        "parallel": 2,
        "early_termination": "median",
        "time_budget_seconds": 600,
        "seed": 3,
    }
    values.update(kwargs)
    return SweepSpec(**values)


def automl(**kwargs: Any) -> AutoMLSpec:
    values: dict[str, Any] = {
        "task": "classification",
        "target": "churn",
        "metric": "roc_auc",
        "families": ("lgbm", "lrl1", "lrl2", "histgb"),
        "time_budget_seconds": 1230,
        "max_trials": 40,
        "parallel": 2,
    }
    values.update(kwargs)
    return AutoMLSpec(**values)


def job(**kwargs: Any) -> JobSpec:
    values: dict[str, Any] = {
        "name": JOB,
        "command": "python sweep_runner.py",
        "compute": CL,
        "inputs": {"train": TRAIN, "test": TEST},
        "environment": {"MLFLOW_RUN_ID": "portal-run", "MLFLOW_EXPERIMENT_ID": "7", "SEED": "3"},
        "tracking_url": "https://portal.example/mlflow/churn",
        "tracking_token": "sgt_secret-of-the-job",
    }
    values.update(kwargs)
    return JobSpec(**values)


def put_body(azure: FakeAzureML, name: str = JOB) -> dict[str, Any]:
    (put,) = azure.calls("PUT", f"/jobs/{name}")
    body: dict[str, Any] = put.body["properties"]
    return body


# --- environments from requirements ---------------------------------------------------


def test_a_job_with_requirements_runs_in_an_environment_made_once(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    first = job(command="python train.py", requirements=("lightgbm==4.5.0", "polars>=1"))
    assert provider.job_submit(first).state == JobState.QUEUED
    version = environment_version(ENVIRONMENT_IMAGE, ("lightgbm==4.5.0", "polars>=1"))
    env_path = f"/environments/sg-{SALT}-env/versions/{version}"
    assert azure.summary() == [
        f"GET /jobs/{JOB}",
        f"GET {env_path}",
        f"PUT {env_path}",
        f"PUT /jobs/{JOB}",
    ]
    (env_put,) = azure.calls("PUT", "/environments/")
    env = env_put.body["properties"]
    assert env["image"] == ENVIRONMENT_IMAGE
    assert env["condaFile"].splitlines() == [
        "channels:",
        "- conda-forge",
        "dependencies:",
        "- python=3.11",
        "- pip",
        "- pip:",
        *(f"  - {p}" for p in BASE_PACKAGES),
        "  - lightgbm==4.5.0",
        "  - polars>=1",
        "name: stagegate-job",
    ]
    assert put_body(azure)["environmentId"] == f"{WS_PATH}{env_path}"

    # The same requirements in another order: the same environment, not made again.
    second = job(
        name=job_name(2, SALT),
        command="python train.py",
        requirements=("polars>=1", "lightgbm==4.5.0"),
    )
    provider.job_submit(second)
    assert len(azure.calls("PUT", "/environments/")) == 1
    assert put_body(azure, job_name(2, SALT))["environmentId"] == f"{WS_PATH}{env_path}"

    # A job of that name with other requirements is another job.
    with pytest.raises(ProviderError, match="already taken"):
        provider.job_submit(job(command="python train.py", requirements=("polars>=1",)))

    # Other requirements: another version of the environment.
    third = job(
        name=job_name(903, SALT), command="python train.py", requirements=("xgboost==2.1.0",)
    )
    provider.job_submit(third)
    assert len(azure.calls("PUT", "/environments/")) == 2
    assert put_body(azure, job_name(903, SALT))["environmentId"] != f"{WS_PATH}{env_path}"


def test_an_existing_environment_is_reused_and_a_requirement_replaces_its_base_package(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    requirements = ("scikit-learn==1.4.2", "MLflow==2.17.0")
    built = provider.build_environment(requirements)
    conda = built._to_rest_object().as_dict()["properties"]["condaFile"]
    pip = [line.strip()[2:] for line in conda.splitlines() if line.startswith("  - ")]
    assert pip == ["azureml-mlflow", "pandas", "pyarrow", "scikit-learn==1.4.2", "MLflow==2.17.0"]

    version = environment_version(ENVIRONMENT_IMAGE, requirements)
    azure.environments[f"sg-{SALT}-env:{version}"] = {
        "id": f"{WS_PATH}/environments/sg-{SALT}-env/versions/{version}",
        "name": version,
        "properties": built._to_rest_object().as_dict()["properties"],
    }
    provider.job_submit(job(command="python train.py", requirements=requirements))
    assert azure.calls("PUT", "/environments/") == []
    assert len(azure.calls("GET", "/environments/")) == 1


def test_a_job_without_requirements_runs_in_the_configured_environment(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    folder = "azureml://datastores/snapshots/paths/ab12/"
    provider.job_submit(job(command="python train.py", inputs={"train": TRAIN, "data": folder}))
    assert put_body(azure)["environmentId"] == CURATED
    # A URI ending with '/' is a folder, anything else a file.
    assert {k: v["jobInputType"] for k, v in put_body(azure)["inputs"].items()} == {
        "train": "uri_file",
        "data": "uri_folder",
    }
    assert azure.calls(contains="/environments/") == []


def test_the_environment_version_is_the_hash_of_image_and_packages() -> None:
    assert environment_version("img:1", ("a==1", "b==2")) == environment_version(
        "img:1", ("b==2", "a==1")
    )
    assert environment_version("img:1", ("a==1",)) != environment_version("img:2", ("a==1",))
    assert environment_version("img:1", ("a==1",)) != environment_version("img:1", ("a==2",))
    assert len(environment_version("img:1", ())) == 32


# --- sweeps ----------------------------------------------------------------------


def test_a_sweep_becomes_an_azure_sweep_job(provider: AzureProvider, azure: FakeAzureML) -> None:
    assert provider.job_submit(job(sweep=sweep())).state == JobState.QUEUED
    body = put_body(azure)
    assert body["jobType"] == "Sweep"
    assert body["experimentName"] == "stagegate"
    assert body["searchSpace"] == {
        # Azure's LogUniform takes the logarithms of the bounds.
        "learning_rate": ["loguniform", [math.log(0.01), math.log(0.3)]],
        "l2_regularization": ["uniform", [0.0, 2.5]],
        "min_samples_leaf": ["quniform", [5, 200, 1]],
        "max_depth": ["choice", [[2, 3, 4]]],
    }
    assert body["samplingAlgorithm"] == {"samplingAlgorithmType": "Random", "seed": 3}
    assert body["objective"] == {"goal": "maximize", "primaryMetric": "roc_auc"}
    assert body["limits"] == {
        "jobLimitsType": "Sweep",
        "maxTotalTrials": 8,
        "maxConcurrentTrials": 2,
        "timeout": "PT10M",
    }
    assert body["earlyTermination"] == {
        "policyType": "MedianStopping",
        "delayEvaluation": 1,
        "evaluationInterval": 1,
    }
    trial = body["trial"]
    assert trial["command"] == (
        "SG_INPUT_TRAIN=${{inputs.train}} SG_INPUT_TEST=${{inputs.test}} "
        f"{TRIAL} --params='{{"
        '"learning_rate": ${{search_space.learning_rate}}, '
        '"l2_regularization": ${{search_space.l2_regularization}}, '
        '"min_samples_leaf": ${{search_space.min_samples_leaf}}, '
        '"max_depth": ${{search_space.max_depth}}}\''
    )
    assert trial["environmentId"] == CURATED
    # Trials log to Azure ML's own tracking, where the sweep reads its objective:
    # neither the portal's run nor its tracking server and token.
    assert trial["environmentVariables"] == {"SEED": "3"}
    assert "sgt_secret" not in str(body)
    assert body["inputs"] == {
        "train": {"uri": TRAIN, "jobInputType": "uri_file"},
        "test": {"uri": TEST, "jobInputType": "uri_file"},
    }
    assert body["computeId"].endswith(f"/computes/{CL}")
    assert body["tags"]["stagegate"] == "job"

    # A retried task finds it; another sweep under the name is not ours.
    provider.job_submit(job(sweep=sweep()))
    assert len(azure.calls("PUT", "/jobs/")) == 1
    with pytest.raises(ProviderError, match="already taken"):
        provider.job_submit(job(sweep=sweep(max_trials=9)))


@pytest.mark.parametrize(
    ("overrides", "sampling", "termination"),
    [
        (
            {"sampler": "grid", "early_termination": "none"},
            {"samplingAlgorithmType": "Grid"},
            None,
        ),
        (
            {"sampler": "tpe", "early_termination": "none", "space": {"x": SPACE["max_depth"]}},
            {"samplingAlgorithmType": "Bayesian"},
            None,
        ),
        (
            {"early_termination": "halving", "seed": 0},
            {"samplingAlgorithmType": "Random"},
            {
                "policyType": "TruncationSelection",
                "truncationPercentage": 67,
                "delayEvaluation": 1,
                "evaluationInterval": 1,
            },
        ),
    ],
)
def test_samplers_and_early_termination(
    provider: AzureProvider,
    azure: FakeAzureML,
    overrides: dict[str, Any],
    sampling: dict[str, Any],
    termination: dict[str, Any] | None,
) -> None:
    space = overrides.pop(
        "space", {"max_depth": SPACE["max_depth"], "n": SPACE["min_samples_leaf"]}
    )
    provider.job_submit(job(sweep=sweep(space=space, **overrides)))
    body = put_body(azure)
    assert body["samplingAlgorithm"] == sampling
    assert body.get("earlyTermination") == termination


def test_a_grid_tries_every_whole_number_of_an_int_range(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    space = {"max_depth": {"type": "int", "low": 2, "high": 5}}
    provider.job_submit(job(sweep=sweep(space=space, sampler="grid", early_termination="none")))
    assert put_body(azure)["searchSpace"] == {"max_depth": ["choice", [[2, 3, 4, 5]]]}


def test_a_sweep_without_a_time_budget_has_no_timeout(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    provider.job_submit(job(sweep=sweep(time_budget_seconds=0)))
    assert "timeout" not in put_body(azure)["limits"]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"sampler": "tpe"}, "Bayesian sampling (tpe) takes no early termination policy"),
        (
            {"sampler": "tpe", "early_termination": "none"},
            "learning_rate: Azure ML's Bayesian (tpe) sampling takes choice, uniform, int "
            "distributions, not loguniform",
        ),
        (
            {"sampler": "grid", "early_termination": "none"},
            "learning_rate: Azure ML's grid sampling takes choice, int distributions, "
            "not loguniform",
        ),
        ({"sampler": "hyperband"}, "Azure ML has no sampler 'hyperband'"),
        ({"early_termination": "asha"}, "Azure ML has no early termination 'asha'"),
        ({"direction": "up"}, "The direction is maximize or minimize"),
        ({"metric": ""}, "A sweep needs the metric its trials log"),
        ({"space": {}}, "The search space is empty"),
        (
            {"space": {"bad name": {"type": "choice", "values": [1]}}},
            "'bad name' is not a parameter",
        ),
        ({"space": {"x": {"type": "normal", "low": 0, "high": 1}}}, "not normal"),
        ({"space": {"x": {"type": "choice", "values": []}}}, "x: a choice needs values"),
        ({"space": {"x": {"type": "uniform", "low": 1, "high": 1}}}, "x: low must be below high"),
        ({"space": {"x": {"type": "loguniform", "low": 0, "high": 1}}}, "needs low above 0"),
        (
            {
                "sampler": "grid",
                "early_termination": "none",
                "space": {"x": {"type": "int", "low": 0, "high": 1000}},
            },
            "x: a grid takes at most 1000 whole numbers",
        ),
        ({"max_trials": 0}, "between 1 and 1000 trials"),
        ({"max_trials": 1001}, "between 1 and 1000 trials"),
        ({"parallel": 0}, "at least 1, at most the number of trials"),
        ({"parallel": 9}, "at least 1, at most the number of trials"),
        ({"time_budget_seconds": 7 * 24 * 3600 + 1}, "at most a week"),
        ({"time_budget_seconds": -1}, "at most a week"),
    ],
)
def test_what_azure_cannot_sweep_is_refused_before_sending(
    provider: AzureProvider, azure: FakeAzureML, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ProviderError, match="Azure ML cannot run this sweep") as refused:
        provider.job_submit(job(sweep=sweep(**overrides)))
    assert reason in str(refused.value)
    assert azure.requests == []


def test_the_edges_of_what_azure_sweeps_are_accepted() -> None:
    assert sweep_refusal(sweep(max_trials=1, parallel=1)) == ""
    assert sweep_refusal(sweep(max_trials=1000, parallel=1000)) == ""
    assert sweep_refusal(sweep(time_budget_seconds=7 * 24 * 3600)) == ""
    grid = {"x": {"type": "int", "low": 1, "high": 1000}}
    assert sweep_refusal(sweep(sampler="grid", early_termination="none", space=grid)) == ""
    tpe = {k: v for k, v in SPACE.items() if v["type"] != "loguniform"}
    assert sweep_refusal(sweep(sampler="tpe", early_termination="none", space=tpe)) == ""


def test_a_parameter_named_like_a_data_input_is_refused(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    space = {"train": {"type": "choice", "values": [1, 2]}}
    with pytest.raises(ProviderError, match="'train' is both a data input and a parameter"):
        provider.job_submit(job(sweep=sweep(space=space)))
    with pytest.raises(ProviderError, match="a sweep or an AutoML search, not both"):
        provider.job_submit(job(sweep=sweep(), automl=automl()))
    assert azure.requests == []


def test_every_portal_sampler_policy_and_distribution_is_mapped() -> None:
    from experiments import sweeps

    assert set(SAMPLER_TYPES) == set(sweeps.SAMPLERS)
    assert set(sweeps.POLICIES) == {"none", "median", "halving"}
    assert set(SAMPLER_TYPES["random"]) == set(sweeps.SPACE_TYPES)


# --- AutoML ------------------------------------------------------------------------


def test_an_automl_search_becomes_an_azure_automl_job(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    spec = job(command="python automl.py", automl=automl(), requirements=("lightgbm==4.5.0",))
    assert provider.job_submit(spec).state == JobState.QUEUED
    body = put_body(azure)
    assert body["jobType"] == "AutoML"
    assert body["experimentName"] == "stagegate"
    task = body["taskDetails"]
    assert task["taskType"] == "Classification"
    assert task["primaryMetric"] == "AUCWeighted"
    assert task["targetColumnName"] == "churn"
    assert task["trainingData"] == {"uri": TRAIN, "jobInputType": "mltable"}
    assert task["limitSettings"] == {
        "timeout": "PT21M",  # 1230 s, rounded up to whole minutes
        "maxTrials": 40,
        "maxConcurrentTrials": 2,
        "enableEarlyTermination": True,
        "sweepConcurrentTrials": 0,
        "sweepTrials": 0,
    }
    # L1 and L2 logistic regression are one algorithm on Azure; histogram
    # gradient boosting is Azure's GradientBoosting.
    assert task["trainingSettings"]["allowedTrainingAlgorithms"] == [
        "LightGBM",
        "LogisticRegression",
        "GradientBoosting",
    ]
    assert body["computeId"].endswith(f"/computes/{CL}")
    # AutoML brings its own environments: no environment of the requirements.
    assert azure.calls(contains="/environments/") == []
    assert "sgt_secret" not in str(body)


def test_a_regression_search_and_the_default_families(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    provider.job_submit(
        job(automl=automl(task="regression", metric="rmse", families=(), max_trials=0))
    )
    task = put_body(azure)["taskDetails"]
    assert task["taskType"] == "Regression"
    assert task["primaryMetric"] == "NormalizedRootMeanSquaredError"
    assert "maxTrials" not in task["limitSettings"]
    assert task["trainingSettings"]["allowedTrainingAlgorithms"] == [
        "LightGBM",
        "XGBoostRegressor",
        "RandomForest",
        "ExtremeRandomTrees",
        "GradientBoosting",
        "ElasticNet",
    ]


@pytest.mark.parametrize(
    ("task", "metric", "azure_metric"),
    [
        ("classification", "accuracy", "Accuracy"),
        ("classification", "roc_auc", "AUCWeighted"),
        ("regression", "rmse", "NormalizedRootMeanSquaredError"),
        ("regression", "mae", "NormalizedMeanAbsoluteError"),
        ("regression", "r2", "R2Score"),
    ],
)
def test_the_charters_metric_is_azures_primary_metric(
    provider: AzureProvider, azure: FakeAzureML, task: str, metric: str, azure_metric: str
) -> None:
    provider.job_submit(job(automl=automl(task=task, metric=metric, families=())))
    assert put_body(azure)["taskDetails"]["primaryMetric"] == azure_metric


def test_the_mappings_name_what_the_sdk_knows() -> None:
    from experiments import sweeps

    for task, enum in (
        ("classification", ClassificationPrimaryMetrics),
        ("regression", RegressionPrimaryMetrics),
    ):
        names = {m.name.lower() for m in enum}
        assert {v.lower() for v in AUTOML_METRICS[task].values()} <= names
    assert set(AUTOML_ALGORITHMS["classification"].values()) <= {
        m.value for m in ClassificationModels
    }
    assert set(AUTOML_ALGORITHMS["regression"].values()) <= {m.value for m in RegressionModels}
    # Every family the portal offers for a task has an Azure algorithm.
    for family, (_, tasks) in sweeps.AUTOML_FAMILIES.items():
        for task in tasks:
            assert family in AUTOML_ALGORITHMS[task], (family, task)
    # The portal's AutoML metrics Azure cannot optimise, and nothing else.
    mapped = {m for metrics in AUTOML_METRICS.values() for m in metrics}
    assert set(sweeps.AUTOML_METRICS) - mapped == {"f1", "log_loss", "mape"}


@pytest.mark.parametrize(
    ("overrides", "inputs", "reason"),
    [
        ({"metric": "f1"}, None, "cannot optimise 'f1' for classification"),
        ({"metric": "log_loss"}, None, "cannot optimise 'log_loss'"),
        ({"task": "regression", "metric": "mape"}, None, "cannot optimise 'mape' for regression"),
        ({"task": "regression", "metric": "accuracy"}, None, "cannot optimise 'accuracy'"),
        ({"task": "forecasting"}, None, "classification or regression, not 'forecasting'"),
        ({"families": ("enet",)}, None, "'enet' is not a model family Azure AutoML has"),
        ({"task": "regression", "metric": "r2", "families": ("lrl1",)}, None, "'lrl1'"),
        ({"target": ""}, None, "needs the charter's target column"),
        ({}, {"test": TEST}, "needs the training data as the job's train input"),
        ({"time_budget_seconds": 840}, None, "between 15 minutes and a week"),
        ({"time_budget_seconds": 7 * 24 * 3600 + 60}, None, "between 15 minutes and a week"),
        ({"parallel": 0}, None, "at least 1 at a time"),
        ({"max_trials": -1}, None, "a limit of 0 (none) or more"),
    ],
)
def test_what_azure_automl_cannot_do_is_refused_before_sending(
    provider: AzureProvider,
    azure: FakeAzureML,
    overrides: dict[str, Any],
    inputs: dict[str, str] | None,
    reason: str,
) -> None:
    spec = job(automl=automl(**overrides), **({"inputs": inputs} if inputs is not None else {}))
    with pytest.raises(ProviderError, match="Azure AutoML cannot run this search") as refused:
        provider.job_submit(spec)
    assert reason in str(refused.value)
    assert azure.requests == []


def test_the_edges_of_the_automl_time_budget() -> None:
    inputs = {"train": TRAIN}
    assert automl_refusal(automl(time_budget_seconds=841), inputs) == ""  # 15 minutes
    assert automl_refusal(automl(time_budget_seconds=7 * 24 * 3600), inputs) == ""


# --- state, cancel, logs, trials -------------------------------------------------------


def test_a_sweeps_state_cancel_and_trials(provider: AzureProvider, azure: FakeAzureML) -> None:
    provider.job_submit(job(sweep=sweep()))
    azure.jobs[JOB]["properties"]["status"] = "Running"
    assert provider.job_status(JOB).state == JobState.RUNNING
    for i, status in enumerate(["Completed", "Running", "Canceled", "Failed"]):
        azure.add_child(JOB, f"{JOB}_{i}", status)
    trials = provider.job_trials(JOB)
    assert [(t.name, t.state, t.best) for t in trials] == [
        (f"{JOB}_0", JobState.SUCCEEDED, False),
        (f"{JOB}_1", JobState.RUNNING, False),
        (f"{JOB}_2", JobState.CANCELED, False),
        (f"{JOB}_3", JobState.FAILED, False),
    ]
    # The service names the best trial on the parent once it knows.
    azure.jobs[JOB]["properties"]["properties"]["best_child_run_id"] = f"{JOB}_0"
    before = len(azure.requests)
    assert [t.name for t in provider.job_trials(JOB) if t.best] == [f"{JOB}_0"]
    # One read of the job (for the best trial) and one of its children.
    assert [r.path.rsplit("/", 2)[-2:] for r in azure.requests[before:]] == [
        ["jobs", JOB],
        [JOB, "children"],
    ]

    # Its own run has no output: the log is its trials.
    assert provider.job_logs(JOB) == "\n".join(
        [
            f"trial {JOB}_0: Completed (best so far)",
            f"trial {JOB}_1: Running",
            f"trial {JOB}_2: Canceled",
            f"trial {JOB}_3: Failed",
        ]
    )
    assert provider.job_logs(JOB, tail=1) == f"trial {JOB}_3: Failed"

    assert provider.job_cancel(JOB).state == JobState.CANCELED
    assert len(azure.calls("POST", f"/jobs/{JOB}/cancel")) == 1
    assert provider.job_status(JOB).detail == "CancelRequested"
    azure.jobs[JOB]["properties"]["status"] = "Canceled"
    assert provider.job_status(JOB).state == JobState.CANCELED

    with pytest.raises(ProviderError, match="No job"):
        provider.job_trials(job_name(404, SALT))
    # A command job with no output yet and no trials: nothing.
    azure.add_job(job_name(5, SALT), "Starting")
    assert provider.job_logs(job_name(5, SALT)) == ""


def test_an_automl_jobs_state_and_logs(provider: AzureProvider, azure: FakeAzureML) -> None:
    provider.job_submit(job(automl=automl()))
    azure.jobs[JOB]["properties"]["status"] = "Completed"
    assert provider.job_status(JOB).state == JobState.SUCCEEDED
    assert provider.job_cancel(JOB).state == JobState.SUCCEEDED  # nothing to cancel
    assert azure.calls("POST", "/cancel") == []
    azure.logs[JOB] = {"user_logs/std_log.txt": "featurizing\nbest: LightGBM 0.91\n"}
    assert provider.job_logs(JOB, tail=1) == "best: LightGBM 0.91"


# --- from the portal's sweep and AutoML services ------------------------------------------


@pytest.fixture
def split(
    project: Any, alice: Any, settings: Any, tmp_path: Any, django_capture_on_commit_callbacks: Any
) -> Any:
    from tests.experiments.jobs_data import ready_split

    settings.STAGEGATE_STORAGE_URL = f"file://{tmp_path / 'storage'}"
    settings.STAGEGATE_STORAGE_OPTIONS = {}
    return ready_split(project=project, actor=alice, callbacks=django_capture_on_commit_callbacks)


def test_a_portal_sweep_and_automl_reach_azure_as_native_searches(
    provider: AzureProvider,
    azure: FakeAzureML,
    project: Any,
    bob: Any,
    split: Any,
    settings: Any,
) -> None:
    from experiments import sweeps
    from experiments.tasks import search_specs
    from tests.experiments.jobs_data import size

    portal_space = {
        "learning_rate": {"type": "loguniform", "low": 0.01, "high": 0.3},
        "min_samples_leaf": {"type": "int", "low": 5, "high": 200},
    }
    settings.CLOUD_PROVIDER = "azure"
    settings.AZURE_NAME_SALT = SALT
    swept = sweeps.sweep_create(
        actor=bob,
        project=project,
        split=split,
        size=size(),
        space=portal_space,
        sampler="random",
        max_trials=8,
        parallel=2,
        early_termination="halving",
        time_budget_minutes=10,
    )
    # An Azure job's name carries the install's salt.
    assert swept.job.provider == "azure"
    assert swept.job.provider_name == job_name(swept.job.pk, SALT)
    found_sweep, found_automl = search_specs(swept.job)
    assert found_automl is None and found_sweep is not None
    assert found_sweep.space == portal_space
    assert (found_sweep.metric, found_sweep.direction) == ("roc_auc", "maximize")
    assert found_sweep.trial_command == (
        "python baseline.py --task=classification --target=churned --metric=roc_auc --family=gbm"
    )
    provider.job_submit(job(sweep=found_sweep))
    body = put_body(azure)
    assert body["searchSpace"]["learning_rate"] == [
        "loguniform",
        [math.log(0.01), math.log(0.3)],
    ]
    assert body["limits"]["maxTotalTrials"] == 8 and body["limits"]["timeout"] == "PT10M"
    assert body["earlyTermination"]["policyType"] == "TruncationSelection"

    # The portal's defaults (tpe with median stopping) are refused on Azure when
    # the sweep is made, saying why; nothing is written.
    from django.core.exceptions import ValidationError

    from experiments.job_models import Job
    from experiments.sweep_models import Sweep

    before = (Sweep.objects.count(), Job.objects.count())
    with pytest.raises(ValidationError, match="On Azure ML: .*Bayesian sampling"):
        sweeps.sweep_create(
            actor=bob, project=project, split=split, size=size(), space=portal_space
        )
    assert (Sweep.objects.count(), Job.objects.count()) == before
    # One made while the portal ran jobs elsewhere is refused when it is submitted.
    settings.CLOUD_PROVIDER = "local"
    default = sweeps.sweep_create(
        actor=bob, project=project, split=split, size=size(), space=portal_space
    )
    settings.CLOUD_PROVIDER = "azure"
    Job.objects.filter(pk=default.job.pk).update(
        provider="azure", provider_name=job_name(default.job.pk, SALT)
    )
    default.job.refresh_from_db()
    with pytest.raises(ProviderError, match="Bayesian sampling"):
        provider.build_job(job(name=job_name(2, SALT), sweep=search_specs(default.job)[0]))

    with pytest.raises(ValidationError, match="On Azure ML: "):
        sweeps.automl_create(
            actor=bob, project=project, split=split, size=size(), time_budget_seconds=300
        )
    assert (Sweep.objects.count(), Job.objects.count()) == (before[0] + 1, before[1] + 1)
    searched = sweeps.automl_create(
        actor=bob, project=project, split=split, size=size(), time_budget_seconds=900
    )
    assert search_specs(searched.job)[0] is None
    found = search_specs(searched.job)[1]
    assert found is not None
    assert (found.task, found.target, found.metric) == ("classification", "churned", "roc_auc")
    provider.job_submit(job(name=job_name(903, SALT), automl=found))
    task = put_body(azure, job_name(903, SALT))["taskDetails"]
    assert task["primaryMetric"] == "AUCWeighted"
    assert task["limitSettings"]["timeout"] == "PT15M"

    # Through the job's task: on the job's own cluster, refused with the reason
    # before any job is sent (the task fails the job with it).
    from experiments.tasks import _submit

    settings.AZURE_NAME_SALT = SALT
    with pytest.raises(ProviderError, match="Bayesian sampling"):
        _submit(provider, default.job)
    assert azure.summary()[-1] == f"PUT /computes/k7q-jc{default.job.pk}"
    assert azure.calls(contains=f"/jobs/{default.job.provider_name}") == []

    # A plain template job carries no search.
    assert search_specs(swept.job.__class__(template="baseline", parameters={})) == (None, None)


def test_the_baseline_reads_the_values_azure_fills_into_a_trials_command(
    provider: AzureProvider, azure: FakeAzureML
) -> None:
    import re
    import shlex

    from experiments.job_templates.baseline import hyperparameters

    provider.job_submit(job(sweep=sweep()))
    command = put_body(azure)["trial"]["command"]
    # What Azure does to a trial's command: each placeholder becomes a sample
    # (a quniform int comes as a float), each input a mounted path.
    sampled = {
        "learning_rate": "0.0421",
        "l2_regularization": "1.5",
        "min_samples_leaf": "17.0",
        "max_depth": "3",
    }
    command = re.sub(r"\$\{\{search_space\.(\w+)\}\}", lambda m: sampled[m.group(1)], command)
    command = re.sub(r"\$\{\{inputs\.(\w+)\}\}", r"/mnt/azureml/inputs/\1", command)
    words = shlex.split(command)
    assert words[:2] == [
        "SG_INPUT_TRAIN=/mnt/azureml/inputs/train",
        "SG_INPUT_TEST=/mnt/azureml/inputs/test",
    ]
    (params,) = [w.removeprefix("--params=") for w in words if w.startswith("--params=")]
    assert hyperparameters(params, "gbm") == {
        "learning_rate": 0.0421,
        "l2_regularization": 1.5,
        "min_samples_leaf": 17,
        "max_depth": 3,
    }


def test_a_jobs_own_cluster_is_named_apart_from_workspace_clusters() -> None:
    from cloud.azure import check_compute_name
    from cloud.base import job_cluster_name

    assert job_cluster_name(7) == job_name(7) == "sg-job-7"  # local: as before
    assert job_cluster_name(7, SALT) == "k7q-jc7" != cluster_name(7, SALT)
    assert check_compute_name(job_cluster_name(9_999_999, "abcdef"), instance=False)
    with pytest.raises(ValueError):
        job_cluster_name(10**7, "abcdef")  # would pass 16 characters
    with pytest.raises(ValueError):
        job_cluster_name(-1, SALT)
    with pytest.raises(ValueError):
        job_cluster_name(7, "a-b")


# --- the split on the workspace's datastore (Azurite) -----------------------------------


@pytest.fixture
def datastore(azure: FakeAzureML) -> Any:
    """The workspace's default datastore on a fresh container of the test command's Azurite."""
    import os
    import uuid

    from azure.storage.blob import BlobServiceClient

    connection_string = os.environ.get("AZURITE_CONNECTION_STRING")
    if not connection_string:
        pytest.fail("AZURITE_CONNECTION_STRING is not set: run the tests with scripts/testenv.py")
    key = dict(p.split("=", 1) for p in connection_string.strip(";").split(";"))["AccountKey"]
    name = f"azureml-blobstore-{uuid.uuid4().hex[:12]}"
    container = BlobServiceClient.from_connection_string(connection_string).get_container_client(
        name
    )
    container.create_container()
    azure.use_datastore(name, os.environ["AZURITE_BLOB_URL"], key)
    return container


def test_the_split_is_uploaded_to_the_default_datastore_and_read_from_there(
    provider: AzureProvider,
    azure: FakeAzureML,
    datastore: Any,
    project: Any,
    bob: Any,
    split: Any,
    settings: Any,
) -> None:
    import hashlib
    import io
    from pathlib import Path

    import pandas as pd
    import yaml

    from experiments import sweeps
    from experiments.tasks import _submit, split_inputs
    from tests.cloud.azure_transport import DATASTORE
    from tests.experiments.jobs_data import size

    settings.CLOUD_PROVIDER = "azure"
    settings.AZURE_NAME_SALT = SALT
    searched = sweeps.automl_create(
        actor=bob, project=project, split=split, size=size(), time_budget_seconds=900
    )
    local = split_inputs(searched.job)
    assert set(local) == {"train", "test"} and all(p.startswith("/") for p in local.values())
    data = {k: Path(p).read_bytes() for k, p in local.items()}
    sha = {k: hashlib.sha256(v).hexdigest() for k, v in data.items()}
    folder = {k: f"stagegate/inputs/{sha[k]}" for k in local}

    # A command job: each part uploaded once, the job reads it from the datastore.
    first, second = job_name(900, SALT), job_name(901, SALT)
    provider.job_submit(job(name=first, inputs=local))
    blobs = {b.name for b in datastore.list_blobs()}
    assert blobs == {f"{folder['train']}/train.parquet", f"{folder['test']}/test.parquet"}
    for part in local:
        uploaded = datastore.download_blob(f"{folder[part]}/{part}.parquet").readall()
        assert uploaded == data[part]
        assert len(pd.read_parquet(io.BytesIO(uploaded))) > 0
    body = put_body(azure, first)
    assert {k: (v["jobInputType"], v["uri"]) for k, v in body["inputs"].items()} == {
        part: ("uri_file", f"azureml://datastores/{DATASTORE}/paths/{folder[part]}/{part}.parquet")
        for part in local
    }
    assert body["command"].startswith(
        "export SG_INPUT_TRAIN=${{inputs.train}} SG_INPUT_TEST=${{inputs.test}}; "
    )
    # The datastore calls are the SDK's: the default one listed, its secrets read.
    assert any(
        r.method == "GET" and r.path.endswith("/datastores") and r.query.get("isDefault")
        for r in azure.requests
    )
    assert azure.calls("POST", f"/datastores/{DATASTORE}/listSecrets")

    # Another job on the same split uploads nothing again.
    before = len(azure.calls("PUT", "blob.core.windows.net"))
    provider.job_submit(job(name=second, inputs=local))
    assert len(azure.calls("PUT", "blob.core.windows.net")) == before
    assert put_body(azure, second)["inputs"] == body["inputs"]

    # A sweep's trials read the uploaded files too.
    swept = job_name(902, SALT)
    provider.job_submit(job(name=swept, sweep=sweep(), inputs=local))
    trial = put_body(azure, swept)["trial"]
    assert {k: v["uri"] for k, v in put_body(azure, swept)["inputs"].items()} == {
        k: v["uri"] for k, v in body["inputs"].items()
    }
    assert trial["command"].startswith(
        "SG_INPUT_TRAIN=${{inputs.train}} SG_INPUT_TEST=${{inputs.test}} "
    )

    # The AutoML job, through the job's task: an MLTable next to the training file,
    # the folder as the mltable input.
    _submit(provider, searched.job)
    mltable = datastore.download_blob(f"{folder['train']}/MLTable").readall().decode()
    assert yaml.safe_load(mltable) == {
        "$schema": "https://azuremlschemas.azureedge.net/latest/MLTable.schema.json",
        "type": "mltable",
        "paths": [{"file": "./train.parquet"}],
        "transformations": [{"read_parquet": {"include_path_column": False}}],
    }
    task = put_body(azure, searched.job.provider_name)["taskDetails"]
    assert task["trainingData"]["jobInputType"] == "mltable"
    assert (
        task["trainingData"]["uri"] == f"azureml://datastores/{DATASTORE}/paths/{folder['train']}/"
    )
    assert task["targetColumnName"] == "churned"


def test_a_csv_input_a_failed_upload_and_a_workspace_without_datastore(
    provider: AzureProvider, azure: FakeAzureML, datastore: Any, tmp_path: Any
) -> None:
    import yaml

    table = tmp_path / "customers"
    table.write_bytes(b"age,churned\n31,0\n47,1\n")
    # A 503 on the upload is retried under the provider's schedule, then succeeds.
    azure.fail("PUT", r"/stagegate/inputs/.*/train\.csv$", 503)
    provider.job_submit(job(automl=automl(), inputs={"train": str(table), "test": TEST}))
    (folder,) = {b.name.rsplit("/", 1)[0] for b in datastore.list_blobs()}
    assert {b.name.rsplit("/", 1)[1] for b in datastore.list_blobs()} == {"train.csv", "MLTable"}
    assert datastore.download_blob(f"{folder}/train.csv").readall() == table.read_bytes()
    mltable = yaml.safe_load(datastore.download_blob(f"{folder}/MLTable").readall())
    assert mltable["paths"] == [{"file": "./train.csv"}]
    assert mltable["transformations"] == [
        {"read_delimited": {"delimiter": ",", "header": "from_first_file", "encoding": "utf8"}}
    ]
    assert put_body(azure)["taskDetails"]["trainingData"]["uri"].endswith(f"/paths/{folder}/")
    assert len(azure.calls("PUT", "/train.csv")) == 2  # the 503, then the upload

    # A local path that is not a file, and a workspace with no default datastore:
    # refused with the reason, no job sent.
    with pytest.raises(ProviderError, match="not a file on this machine"):
        provider.job_submit(job(name=job_name(2, SALT), inputs={"train": str(tmp_path / "gone")}))
    bare = FakeAzureML()
    other = provider_on(bare)
    with pytest.raises(ProviderError, match="no default datastore"):
        other.job_submit(job(inputs={"train": str(table)}))
    assert bare.calls("PUT", "/jobs/") == []
