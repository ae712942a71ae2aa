"""``lakeforge deploy airflow``: the pipeline as an Airflow 3 DAG file.

One ``BashOperator`` per task of :meth:`Project.tasks`, wired as that graph, each running
``<lakeforge> run --task <task> --project <project> --json``: Airflow orchestrates, lakeforge runs from its own
environment (Airflow's pins are not lakeforge's), so the DAG file imports nothing of lakeforge. ``LAKEFORGE_BIN``
and ``LAKEFORGE_PROJECT`` in the workers' environment override the command and project folder written into the
file (Airflow 3 workers parse the DAG file when they run a task), so one file can be shipped to any deployment.

``deploy:`` in ``lakeforge.yml`` maps to: ``schedule`` -> a UTC ``CronTriggerTimetable`` (null: triggered only),
``retries`` / ``retry_delay_minutes`` / ``timeout_minutes`` -> ``default_args``, ``notify`` -> an ``SmtpNotifier``
on task failure, ``sla_minutes`` -> a Deadline Alert (Airflow 3 replaced ``sla`` with ``DeadlineAlert``).
The output is deterministic: the same project gives the same bytes.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lakeforge.deploy.tasks import safe_id, unique_ids
from lakeforge.errors import ConfigError
from lakeforge.pipeline.runner import tasks

if TYPE_CHECKING:
    from lakeforge.config.models import DeployConfig
    from lakeforge.workspace import Workspace

ENV_BIN = "LAKEFORGE_BIN"
ENV_PROJECT = "LAKEFORGE_PROJECT"
START_DATE = 'pendulum.datetime(2024, 1, 1, tz="UTC")'  # fixed for determinism; catchup=False ignores it
_MAX_ID = 250  # Airflow's limit on dag and task ids
_DAG_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_LINE = 120


def task_id(task: str) -> str:
    """The Airflow task id of a lakeforge task: ``ingest:telemetry`` -> ``ingest__telemetry``,
    ``silver.telemetry`` -> ``silver__telemetry`` (a ``.`` would read as a task group in Airflow)."""
    return safe_id(task)


def dag_id(workspace: Workspace) -> str:
    """``deploy.airflow.dag_id``, by default ``lakeforge_<project name>``."""
    name = workspace.config.deploy.airflow.dag_id or f"lakeforge_{workspace.config.name}"
    if not _DAG_ID.match(name) or len(name) > _MAX_ID:
        raise ConfigError(f"deploy.airflow.dag_id {name!r} is not a valid Airflow DAG id",
                          hint=f"use up to {_MAX_ID} letters, digits, '_', '-' and '.'")
    return name


def _schedule(cron: str | None) -> str:
    if cron is None:
        return "None"
    if len(cron.split()) != 5:
        raise ConfigError(f"deploy.schedule {cron!r} is not a 5-field cron expression",
                          hint="write minute hour day-of-month month day-of-week, e.g. '0 * * * *' (UTC), "
                          "or null to run only when triggered")
    return f'CronTriggerTimetable({_q(" ".join(cron.split()))}, timezone="UTC")'


def _q(value: str) -> str:
    """A Python string literal (JSON's quoting is valid Python and the same on every run): the DAG file's source,
    not SQL, so not :mod:`lakeforge.sql`."""
    return json.dumps(value)


def _minutes(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _strings(values: Sequence[str], *, indent: str) -> str:
    """A list literal of strings: on one line when it fits, else one item a line (as ruff format would)."""
    one = "[" + ", ".join(_q(v) for v in values) + "]"
    if len(indent) + len(one) + 2 <= _LINE:
        return one
    inner = indent + "    "
    return "[\n" + "".join(f"{inner}{_q(v)},\n" for v in values) + indent + "]"


def _stages(graph: dict[str, list[str]]) -> str:
    unique_ids(graph, to_id=task_id, what="Airflow task id", limit=_MAX_ID)
    lines = []
    for task, upstream in graph.items():
        deps = [task_id(u) for u in upstream]
        line = f"    {_q(task_id(task))}: ({_q(task)}, {_strings(deps, indent='')}),"
        if len(line) <= _LINE:
            lines.append(line)
        else:
            lines.append(f"    {_q(task_id(task))}: (\n        {_q(task)},\n"
                         f"        {_strings(deps, indent='        ')},\n    ),")
    return "\n".join(lines)


def _default_args(deploy: DeployConfig) -> str:
    args = [f'"owner": {_q(deploy.airflow.owner)}', f'"retries": {deploy.retries}',
            f'"retry_delay": timedelta(minutes={_minutes(deploy.retry_delay_minutes)})']
    if deploy.timeout_minutes is not None:
        args.append(f'"execution_timeout": timedelta(minutes={deploy.timeout_minutes})')
    if deploy.notify:
        args.append('"on_failure_callback": SmtpNotifier(to=NOTIFY)')
    return "".join(f"        {a},\n" for a in args)


def _deadline(deploy: DeployConfig, *, the_dag_id: str) -> str:
    """``deadline=DeadlineAlert(...)``: Airflow 3's successor of ``sla`` (the argument line, or "")."""
    if deploy.sla_minutes is None:
        return ""
    if deploy.notify:
        subject = f"{the_dag_id}: a run is not finished {deploy.sla_minutes} minutes after it was queued"
        callback = f'AsyncCallback(SmtpNotifier, kwargs={{"to": NOTIFY, "subject": {_q(subject)}}})'
        if len(callback) > _LINE - len("        callback=,"):
            callback = (f"AsyncCallback(\n            SmtpNotifier,\n            kwargs="
                        f'{{"to": NOTIFY, "subject": {_q(subject)}}},\n        )')
        told = ["e-mails deploy.notify"]
    else:  # nobody to tell: the miss is still recorded
        callback = 'AsyncCallback("asyncio.sleep", kwargs={"delay": 0})'
        told = ["is marked missed (UI, metric deadline_alerts.deadline_missed);",
                "deploy.notify is empty, so the callback does nothing"]
    comment = [f"deploy.sla_minutes: a run not finished {deploy.sla_minutes} minutes after it was queued",
               f"(a scheduled run: at its scheduled time) {told[0]}", *told[1:]]
    return (
        "".join(f"    # {line}\n" for line in comment)
        + "    deadline=DeadlineAlert(\n"
        "        reference=DeadlineReference.DAGRUN_QUEUED_AT,\n"
        f"        interval=timedelta(minutes={deploy.sla_minutes}),\n"
        f"        callback={callback},\n"
        "    ),\n"
    )


def render_dag(workspace: Workspace, *, lakeforge_bin: str | None = None) -> str:
    """The DAG file's Python source for ``project`` (``lakeforge_bin``: the lakeforge command on the workers,
    default ``deploy.airflow.lakeforge_bin``)."""
    deploy = workspace.config.deploy
    command = lakeforge_bin if lakeforge_bin is not None else deploy.airflow.lakeforge_bin
    if not command.strip():
        raise ConfigError("the lakeforge command for the Airflow workers is empty",
                          hint="pass --lakeforge-bin /path/to/lakeforge or set deploy.airflow.lakeforge_bin")
    name = workspace.config.name
    the_dag_id = dag_id(workspace)
    schedule = _schedule(deploy.schedule)
    stages = _stages(tasks(workspace))
    sdk = ["DAG"]
    if deploy.sla_minutes is not None:
        sdk += ["AsyncCallback"]
    if deploy.schedule is not None:
        sdk += ["CronTriggerTimetable"]
    if deploy.sla_minutes is not None:
        sdk += ["DeadlineAlert", "DeadlineReference"]
    notifier = "from airflow.providers.smtp.notifications.smtp import SmtpNotifier\n" if deploy.notify else ""
    notify = f"NOTIFY = {_strings(deploy.notify, indent='')}  # deploy.notify\n" if deploy.notify else ""

    return f'''\
# Generated by `lakeforge deploy airflow` from the lakeforge project {_q(name)}: do not edit.
# Regenerate it after changing sources, models or `deploy:` in lakeforge.yml:
#     lakeforge deploy airflow --project {shlex.quote(str(workspace.path))}
# Every task runs one stage with `lakeforge run --task <stage> --project <project> --json`, with the lakeforge
# of its own environment; ${ENV_BIN} and ${ENV_PROJECT} in the Airflow workers' environment override
# the command and the project folder written below.
"""lakeforge pipeline {name}: landing files -> Delta bronze, silver, gold -> warehouse, one task per stage."""

from __future__ import annotations

import os
import shlex
from datetime import timedelta

import pendulum
{notifier}from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import {', '.join(sdk)}

PROJECT = os.environ.get(
    {_q(ENV_PROJECT)},
    {_q(str(workspace.path))},
)
LAKEFORGE_BIN = os.environ.get(
    {_q(ENV_BIN)},
    {_q(command)},
)
{notify}
# Airflow task id -> (lakeforge task, the task ids it waits for): `lakeforge.pipeline.runner.tasks`, in run order
STAGES: dict[str, tuple[str, list[str]]] = {{
{stages}
}}


def lakeforge_run(stage: str) -> str:
    """The shell command that runs one stage; it exits non-zero, with one error line, when the stage fails."""
    return shlex.join([*shlex.split(LAKEFORGE_BIN), "run", "--task", stage, "--project", PROJECT, "--json"])


with DAG(
    dag_id={_q(the_dag_id)},
    description={_q(f"lakeforge pipeline {name}, one task per stage")},
    schedule={schedule},
    start_date={START_DATE},
    catchup=False,
    # runs of one lakehouse are one at a time (lakeforge holds a lock): one DAG run, one task at a time
    max_active_runs=1,
    max_active_tasks=1,
    default_args={{
{_default_args(deploy)}    }},
{_deadline(deploy, the_dag_id=the_dag_id)}    tags={_strings(['lakeforge', name], indent='    ')},
) as dag:
    tasks = {{
        tid: BashOperator(task_id=tid, bash_command=lakeforge_run(stage), skip_on_exit_code=None)
        for tid, (stage, _) in STAGES.items()
    }}
    for tid, (_, upstream) in STAGES.items():
        for up in upstream:
            tasks[up] >> tasks[tid]
'''


def write_dag(workspace: Workspace, *, out: Path, lakeforge_bin: str | None = None) -> Path:
    """Write the DAG file: to ``out`` if it names a ``.py`` file, else to ``out/<dag_id>.py``. Returns the path."""
    out = Path(out)
    path = out if out.suffix == ".py" else out / f"{dag_id(workspace)}.py"
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"{path.parent} is not a folder", hint="pass --out a folder or a .py file")
    if path.is_dir():
        raise ConfigError(f"{path} is a folder", hint="pass --out a folder or a .py file")
    source = render_dag(workspace, lakeforge_bin=lakeforge_bin)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # Airflow's DAG processor never sees half a file
    tmp.write_text(source, encoding="utf-8")
    tmp.replace(path)
    return path
