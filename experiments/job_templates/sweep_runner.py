"""A hyperparameter sweep with Optuna, run as one training job's command.

Runs inside the job's sandbox, with the job's Python:

    python sweep_runner.py --task classification --target churned --metric roc_auc \
        --family gbm --config '{"space": {...}, "sampler": "tpe", ...}'

The configuration (checked by ``experiments.sweeps`` before the job is made):
``space`` (parameter name to ``{"type": "choice", "values": [...]}``,
``{"type": "uniform" | "loguniform" | "int", "low": a, "high": b}``),
``sampler`` (grid, random, tpe), ``seed``, ``objective``
(``{"metric": m, "direction": "maximize" | "minimize"}``), ``max_trials``,
``parallel``, ``early_termination`` (``{"policy": "none" | "median" | "halving",
...}``) and ``time_budget_seconds``.

Each trial runs the baseline template (``baseline.py``) as a subprocess in a
process group of its own, with the trial's hyperparameters, logging into a
child run of the job's run (``MLFLOW_RUN_ID``, tag ``mlflow.parentRunId``).
The trial appends its metric after each training step to a JSON-lines file;
the runner feeds those values to Optuna's pruner.

Over the user's own code (the configuration's ``command``, run in the code's
folder, where this file lies as ``.stagegate_sweep_runner.py``), each trial
runs ``command --name=value ...`` with the trial's parameters, and with
``MLFLOW_RUN_ID`` set to its child run (the job's tracking settings are
inherited), ``SG_TRIAL_NUMBER``, ``SG_TRIAL_PARAMS`` (a JSON object) and
``SG_TRIAL_PROGRESS``, a file to which the script may append one JSON line
``{"step": n, "value": v}`` per step for early termination. The runner also
reads the child run's history of the objective's metric through the
tracking API, every few seconds, for the same purpose. A trial's objective is
the metric's latest value in its child run (or, without a tracking server,
the progress file's last value); a trial that logged neither fails.

A pruned trial's
process group is killed and its run ends KILLED, tagged
``stagegate.sweep.pruned``. The job's run keeps the best trial so far: the
objective's metric (a point per improvement, stepped 1, 2, ...) and the tags ``stagegate.sweep.best_run_id`` and
``stagegate.sweep.best_trial``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "stagegate.sweep.trial"
PRUNED_TAG = "stagegate.sweep.pruned"
BEST_RUN_TAG = "stagegate.sweep.best_run_id"
BEST_TRIAL_TAG = "stagegate.sweep.best_trial"
POLL_SECONDS = 0.2
HISTORY_SECONDS = 2.0


def sampler_for(config: dict[str, Any]) -> Any:
    import optuna

    seed = int(config.get("seed", 0))
    kind = config.get("sampler", "tpe")
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        grid = {}
        for name, spec in config["space"].items():
            if spec["type"] == "choice":
                grid[name] = list(spec["values"])
            else:
                grid[name] = list(range(int(spec["low"]), int(spec["high"]) + 1))
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4)


def pruner_for(config: dict[str, Any]) -> Any:
    import optuna

    early = config.get("early_termination") or {}
    policy = early.get("policy", "none")
    if policy == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(early.get("startup_trials", 2)),
            n_warmup_steps=int(early.get("warmup_steps", 1)),
        )
    if policy == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=int(early.get("min_steps", 1)),
            reduction_factor=int(early.get("reduction_factor", 3)),
        )
    return optuna.pruners.NopPruner()


def suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "choice":
            values[name] = trial.suggest_categorical(name, list(spec["values"]))
        elif kind == "int":
            values[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]))
        else:
            values[name] = trial.suggest_float(
                name, float(spec["low"]), float(spec["high"]), log=kind == "loguniform"
            )
    return values


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """The trial's whole process group: TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def read_progress(path: Path, seen: int) -> list[tuple[int, float]]:
    """The steps after the first ``seen`` ones (whole lines only)."""
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[:-1]
    points = []
    for line in lines[seen:]:
        try:
            data = json.loads(line)
            points.append((int(data["step"]), float(data["value"])))
        except (ValueError, KeyError, TypeError):
            points.append((seen + len(points) + 1, math.nan))
    return points


class Sweep:
    def __init__(self, args: argparse.Namespace, config: dict[str, Any]) -> None:
        self.args = args
        self.config = config
        objective = config.get("objective") or {}
        self.metric = objective.get("metric") or args.metric
        self.maximize = objective.get("direction", "maximize") == "maximize"
        self.deadline = time.monotonic() + float(config.get("time_budget_seconds", 3600))
        self.parent = os.environ.get("MLFLOW_RUN_ID", "")
        self.experiment = os.environ.get("MLFLOW_EXPERIMENT_ID", "")
        self.tracking = bool(os.environ.get("MLFLOW_TRACKING_URI")) and bool(self.parent)
        self.folder = Path(os.environ.get("SG_OUTPUT_DIR", ".")) / "trials"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.best: float | None = None
        self.improvements = 0
        self.client: Any = None
        if self.tracking:
            from mlflow import MlflowClient

            self.client = MlflowClient()

    def better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.maximize else value < self.best

    def child_run(self, number: int, params: dict[str, Any]) -> str:
        if self.client is None:
            return ""
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment,
            run_name=f"trial {number}",
            tags={PARENT_TAG: self.parent, TRIAL_TAG: str(number)},
        )
        # At once, so that a trial stopped early shows what it tried too.
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return str(run.info.run_id)

    def record_best(self, number: int, run_id: str, value: float) -> None:
        with self.lock:
            if not self.better(value):
                return
            self.best = value
            # Stepped by improvement, not by trial number: trials that run side
            # by side end out of order, and the run's latest point must be the best.
            self.improvements += 1
            print(f"best so far: trial {number}, {self.metric} = {value:.6g}", flush=True)
            if self.client is not None:
                self.client.log_metric(self.parent, self.metric, value, step=self.improvements)
                self.client.set_tag(self.parent, BEST_RUN_TAG, run_id)
                self.client.set_tag(self.parent, BEST_TRIAL_TAG, str(number))

    def end_run(self, run_id: str, status: str, pruned: str = "") -> None:
        if self.client is None or not run_id:
            return
        if pruned:
            self.client.set_tag(run_id, PRUNED_TAG, pruned)
        self.client.set_terminated(run_id, status)

    def command(self, params: dict[str, Any], progress: Path) -> list[str]:
        user = self.config.get("command")
        if user:
            options = " ".join(shlex.quote(f"--{k}={v}") for k, v in params.items())
            return ["/bin/sh", "-c", f"{user} {options}"]
        return [
            sys.executable,
            str(HERE / "baseline.py"),
            f"--task={self.args.task}",
            f"--target={self.args.target}",
            f"--metric={self.metric}",
            f"--family={self.args.family}",
            f"--params={json.dumps(params)}",
            f"--progress={progress}",
            "--no-model",
        ]

    def history(self, run_id: str, seen: set[int]) -> list[tuple[int, float]]:
        """The steps of the objective's metric the child run logged since."""
        if self.client is None or not run_id or not self.config.get("command"):
            return []
        try:
            points = self.client.get_metric_history(run_id, self.metric)
        except Exception:  # noqa: BLE001 - the tracking server is busy: next time
            return []
        fresh = sorted((int(p.step), float(p.value)) for p in points if int(p.step) not in seen)
        seen.update(step for step, _ in fresh)
        return fresh

    def result(self, run_id: str, output: Path, progress: Path) -> float | None:
        """The trial's objective: the baseline's metrics.json; for user code,
        the child run's latest value of the metric, else the progress file's."""
        if not self.config.get("command"):
            metrics = json.loads((output / "metrics.json").read_text())["metrics"]
            return float(metrics[self.metric])
        if self.client is not None and run_id:
            logged = self.client.get_run(run_id).data.metrics.get(self.metric)
            if logged is not None:
                return float(logged)
        points = read_progress(progress, 0)
        return points[-1][1] if points else None

    def objective(self, trial: Any) -> float:
        import optuna

        params = suggest(trial, self.config["space"])
        number = trial.number
        run_id = self.child_run(number, params)
        progress = self.folder / f"trial-{number}.jsonl"
        progress.unlink(missing_ok=True)
        output = self.folder / f"trial-{number}"
        output.mkdir(exist_ok=True)
        command = self.command(params, progress)
        env = {
            **os.environ,
            "SG_OUTPUT_DIR": str(output),
            "MLFLOW_RUN_ID": run_id,
            "SG_TRIAL_NUMBER": str(number),
            "SG_TRIAL_PARAMS": json.dumps(params),
            "SG_TRIAL_PROGRESS": str(progress),
        }
        if not run_id:
            env.pop("MLFLOW_TRACKING_URI", None)
        print(f"trial {number} starts: {json.dumps(params)}", flush=True)
        with (output / "trial.log").open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - an argv list (user code: its own command, by sh)
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            seen, asked = 0, 0.0
            steps: set[int] = set()
            reported: set[int] = set()
            while True:
                done = proc.poll() is not None
                points = read_progress(progress, seen)
                seen += len(points)
                if time.monotonic() - asked > HISTORY_SECONDS or done:
                    asked = time.monotonic()
                    points += self.history(run_id, steps)
                for step, value in points:
                    if step in reported:
                        continue
                    reported.add(step)
                    trial.report(value, step)
                    if trial.should_prune():
                        kill_group(proc)
                        why = f"pruned at step {step}: {self.metric} = {value:.6g}"
                        print(f"trial {number} {why}", flush=True)
                        self.end_run(run_id, "KILLED", why)
                        raise optuna.TrialPruned(why)
                if done:
                    break
                if time.monotonic() > self.deadline:
                    kill_group(proc)
                    self.end_run(run_id, "KILLED", "stopped: the sweep's time budget ran out")
                    raise optuna.TrialPruned("the time budget ran out")
                time.sleep(POLL_SECONDS)
        tail = (output / "trial.log").read_text(errors="replace")[-2000:]
        if proc.returncode != 0:
            print(f"trial {number} failed (exit code {proc.returncode}):\n{tail}", flush=True)
            self.end_run(run_id, "FAILED")
            raise RuntimeError(f"trial {number} failed")
        found = self.result(run_id, output, progress)
        if found is None or not math.isfinite(found):
            print(f"trial {number} logged no finite {self.metric}:\n{tail}", flush=True)
            self.end_run(run_id, "FAILED")
            raise RuntimeError(f"trial {number} logged no {self.metric}")
        value = found
        print(f"trial {number} ends: {self.metric} = {value:.6g}", flush=True)
        self.end_run(run_id, "FINISHED")
        self.record_best(number, run_id, value)
        return value


def main(argv: list[str] | None = None) -> int:
    import optuna

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["classification", "regression"])
    parser.add_argument("--target", default="")
    parser.add_argument("--metric", default="")
    parser.add_argument("--family", choices=["linear", "gbm"], default="gbm")
    parser.add_argument("--config", required=True, help="the sweep, a JSON object")
    args = parser.parse_args(argv)
    config = json.loads(args.config)
    if not config.get("command") and not (args.task and args.target and args.metric):
        parser.error("the baseline's sweep needs --task, --target and --metric")
    # The job's log is for people: no tracking URLs after every run.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    sweep = Sweep(args, config)
    study = optuna.create_study(
        direction="maximize" if sweep.maximize else "minimize",
        sampler=sampler_for(config),
        pruner=pruner_for(config),
    )
    parallel = max(1, int(config.get("parallel", 1)))
    trials = int(config.get("max_trials", 10))
    print(
        f"sweep: {trials} trials, {parallel} at a time, sampler {config.get('sampler', 'tpe')}, "
        f"early termination {(config.get('early_termination') or {}).get('policy', 'none')}",
        flush=True,
    )
    study.optimize(
        sweep.objective,
        n_trials=trials,
        n_jobs=parallel,
        timeout=float(config.get("time_budget_seconds", 3600)),
        catch=(RuntimeError,),
    )
    states = [t.state.name for t in study.trials]
    summary = {s: states.count(s) for s in sorted(set(states))}
    print(f"trials: {json.dumps(summary)}", flush=True)
    if sweep.best is None:
        print("no trial completed", flush=True)
        return 1
    best = study.best_trial
    print(f"best trial {best.number}: {sweep.metric} = {best.value:.6g} {best.params}", flush=True)
    Path(os.environ.get("SG_OUTPUT_DIR", "."), "metrics.json").write_text(
        json.dumps({"params": best.params, "metrics": {sweep.metric: best.value}})
    )
    if sweep.client is not None:
        sweep.client.log_param(sweep.parent, "sweep_trials", str(len(states)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
