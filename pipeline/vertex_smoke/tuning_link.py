"""Check 3: the run's ``launch-tuning`` task names its tuning job in ``gcp_resources`` (GCPC's
format) and that job exists. ``gcp_resources`` is read from the task details, or, where they
carry no output parameters, from the task's executor output under the pipeline root."""

import json
from dataclasses import dataclass

from pipeline.vertex import pipeline_root
from pipeline.vertex_smoke.checklist import CHECK_TITLES, Check, not_run
from pipeline.vertex_smoke.observe import TaskView, error_line, find_task
from pipeline.vertex_smoke.plan import tuning_job_url
from pipeline.vertex_smoke.session import Smoke


def parse_gcp_resources(text: str) -> list[str]:
    """Resource names in a GCPC ``gcp_resources`` JSON (``.../v1/projects/...`` URIs), [] if none."""
    try:
        resources = json.loads(text).get("resources", []) if text else []
    except (ValueError, AttributeError):
        return []
    return [r["resourceUri"].split("/v1/", 1)[-1] for r in resources if isinstance(r, dict) and r.get("resourceUri")]


def tuning_jobs_in(names: list[str]) -> list[str]:
    return [n for n in names if "/tuningJobs/" in n]


@dataclass(frozen=True)
class TuningLink:
    gcp_resources_names: tuple = ()  # resource names in launch-tuning's gcp_resources
    source: str = ""  # where gcp_resources was read
    job_name_output: str = ""  # launch-tuning's job_name output
    job_state: str = ""  # the named job's state, "" if it could not be read
    error: str = ""


def tuning_link_row(link: TuningLink) -> Check:
    jobs = tuning_jobs_in(list(link.gcp_resources_names))
    evidence = []
    if not jobs:
        evidence.append(f"no tuningJobs resource in launch-tuning's gcp_resources ({link.source or 'not found'})")
    else:
        evidence.append(f"gcp_resources ({link.source}) names {jobs[0]}")
        if link.job_name_output and link.job_name_output != jobs[0]:
            evidence.append(f"but its job_name output is {link.job_name_output}")
        if link.job_state:
            evidence.append(f"the tuning job exists: {link.job_state}")
        evidence.append(tuning_job_url(jobs[0]))
    if link.error:
        evidence.append(f"error: {link.error}")
    ok = (
        bool(jobs)
        and bool(link.job_state)
        and not link.error
        and (not link.job_name_output or link.job_name_output == jobs[0])
    )
    return Check(3, CHECK_TITLES[3], ok, evidence)


def tuning_link_check(smoke: Smoke, job, tasks: list[TaskView]) -> Check:
    launch = find_task(tasks, "launch-tuning")
    if launch is None or launch.state != "SUCCEEDED":
        return not_run(3, f"launch-tuning {launch.state if launch else 'did not run'}")
    link = {}
    try:
        names, source, job_name = gcp_resources(smoke, job, tasks)
        link.update(gcp_resources_names=tuple(names), source=source, job_name_output=job_name)
        jobs = tuning_jobs_in(names)
        if jobs:
            link["job_state"] = smoke.tuning_state(jobs[0])
    except Exception as error:
        link["error"] = error_line(error)
    return tuning_link_row(TuningLink(**link))


def gcp_resources(smoke: Smoke, job, tasks: list[TaskView]) -> tuple[list[str], str, str]:
    """(names, where they were read, launch-tuning's job_name output) of the run's launch-tuning."""
    launch = find_task(tasks, "launch-tuning")
    job_name = launch.job_name if launch else ""
    if launch and launch.gcp_resources:
        return parse_gcp_resources(launch.gcp_resources), "task details: output:gcp_resources", job_name
    names, where = gcp_resources_in_root(smoke, job.resource_name.rsplit("/", 1)[-1])
    return names, where, job_name


def gcp_resources_in_root(smoke: Smoke, run_id: str) -> tuple[list[str], str]:
    """launch-tuning's executor_output.json under the pipeline root, for a run whose task
    details do not carry output parameters."""
    from google.cloud import storage

    root = pipeline_root(smoke.bucket)[len("gs://") :]
    bucket_name, _, prefix = root.partition("/")
    glob = f"{prefix}/*/{run_id}/launch-tuning_*/executor_output.json"
    client = storage.Client(project=smoke.project, credentials=smoke.credentials)
    for blob in client.list_blobs(bucket_name, prefix=f"{prefix}/", match_glob=glob):
        values = json.loads(blob.download_as_bytes()).get("parameterValues", {})
        return parse_gcp_resources(values.get("gcp_resources", "")), f"gs://{bucket_name}/{blob.name}"
    return [], f"no gs://{bucket_name}/{glob}"
