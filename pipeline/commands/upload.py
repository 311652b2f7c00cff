"""``python -m pipeline upload`` (``make upload``): the compiled pipeline to a Kubeflow Pipelines
repository in Artifact Registry, as a console template (through ``kfp.registry.RegistryClient``)."""

import re
from pathlib import Path

import typer

from pipeline.commands import options
from pipeline.terminal import fail
from pipeline.vertex import adc, cloud_errors, console, out

TEMPLATE = options.template_option()


def upload_command(
    repo: str = typer.Option(
        ..., "--repo", help="Kubeflow Pipelines repository: https://LOCATION-kfp.pkg.dev/PROJECT/REPO"
    ),
    tag: list[str] = typer.Option(["latest"], "--tag", help="Tag of this version (repeatable)."),
    description: str | None = typer.Option(None, "--description", help="Template description shown in the console."),
    template: Path = TEMPLATE,
):
    """Upload the compiled pipeline to Artifact Registry, so runs can start from the console's templates."""
    from kfp.registry import RegistryClient

    options.require_compiled(template)
    if not re.match(r"^https?://", repo):
        fail(f"--repo {repo!r}: expected https://LOCATION-kfp.pkg.dev/PROJECT/REPO")
    bad = [t for t in tag if t.startswith("sha256:") or not t.strip()]
    if bad:
        fail(f"--tag {bad[0]!r}: tags may not be empty or start with sha256: (that is a version)")
    with cloud_errors():
        credentials, _ = adc()
        if not credentials.valid:
            import google.auth.transport.requests

            credentials.refresh(google.auth.transport.requests.Request())
        client = RegistryClient(host=repo, auth=credentials)
        headers = {"description": description} if description else None
        package, version = client.upload_pipeline(file_name=str(template), tags=list(tag), extra_headers=headers)
    console.print(
        f"uploaded template [bold]{package}[/bold] version [bold]{version}[/bold] tags {', '.join(tag)}",
        highlight=False,
    )
    out.print(f"{repo.rstrip('/')}/{package}/{tag[0]}", soft_wrap=True, highlight=False)
