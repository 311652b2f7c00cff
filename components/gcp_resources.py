"""The ``gcp_resources`` output Google Cloud Pipeline Components give the jobs they start,
and resuming the tuning job an earlier attempt of a task started.
"""


def vertex_resource_uri(location, resource_name):
    """``https://{location}-aiplatform.googleapis.com/v1/{resource_name}``, or the local API's.

    The URI form Google Cloud Pipeline Components give the jobs and artifacts they create;
    offline GOOGLE_VERTEX_BASE_URL names the local Vertex AI instead.
    """
    import os

    api = os.environ.get("GOOGLE_VERTEX_BASE_URL") or f"https://{location}-aiplatform.googleapis.com"
    return f"{api.rstrip('/')}/v1/{resource_name}"


def write_gcp_resources(path, location, resource_name, resource_type="TuningJob"):
    """Writes the ``gcp_resources`` output that names a long-running job.

    Built with Google Cloud Pipeline Components' own GcpResources proto, as their launchers
    do, so the Vertex console reads it the same way.
    """
    from google.protobuf import json_format
    from google_cloud_pipeline_components.proto.gcp_resources_pb2 import GcpResources

    resources = GcpResources()
    resource = resources.resources.add()
    resource.resource_type = resource_type
    resource.resource_uri = vertex_resource_uri(location, resource_name)
    with open(path, "w") as f:
        f.write(json_format.MessageToJson(resources))


def read_gcp_resources(path):
    """The resource names in a ``gcp_resources`` file an earlier attempt wrote ([] if none)."""
    import os

    from google.protobuf import json_format
    from google_cloud_pipeline_components.proto.gcp_resources_pb2 import GcpResources

    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return []
    with open(path) as f:
        try:
            resources = json_format.Parse(f.read(), GcpResources())
        except json_format.ParseError:
            return []
    return [r.resource_uri.split("/v1/", 1)[-1] for r in resources.resources if r.resource_uri]


def earlier_attempts_job(client, gcp_resources_path, launch_key):
    """The tuning job an earlier attempt of this task started, if it can still succeed.

    Looks first in the task's own ``gcp_resources`` output, then for a job labelled
    ``kfp_launch=<launch_key>`` (the label is checked here too, whatever the server's
    filter did). Jobs that ended FAILED, CANCELLED or EXPIRED are not resumed.
    """
    from google.genai import types

    def usable(job):
        state = job.state.name if job.state else ""
        return state not in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")

    for name in read_gcp_resources(gcp_resources_path):
        if "/tuningJobs/" in name:
            job = client.tunings.get(name=name)
            if usable(job):
                return job
    if not launch_key:
        return None
    config = types.ListTuningJobsConfig(filter=f'labels.kfp_launch="{launch_key}"', page_size=100)
    for job in client.tunings.list(config=config):
        if (job.labels or {}).get("kfp_launch") == launch_key and usable(job):
            return job
    return None
