"""The local Artifact Registry (KFP format) through the unchanged ``kfp.registry.RegistryClient``,
``python -m pipeline upload``, and template resolution for PipelineJobs' ``templateUri``."""

from pathlib import Path

import httpx
import pytest
import yaml
from kfp import compiler, dsl
from kfp.registry import RegistryClient

from localvertex.errors import ApiError
from localvertex.pipelines.registry import DEFAULT_REPOSITORY, host_url
from tests.conftest import PROJECT

LOCATION = "us-central1"


@dsl.component(base_image="python:3.11")
def echo(text: str) -> str:
    return text


@dsl.pipeline(name="toy-template")
def toy_pipeline(text: str = "hello"):
    echo(text=text)


@pytest.fixture(scope="module")
def toy_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy.yaml"
    compiler.Compiler().compile(toy_pipeline, str(path))
    return path


@pytest.fixture(scope="module")
def credentials(local_stack):
    import google.auth
    import google.auth.transport.requests

    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    creds.refresh(google.auth.transport.requests.Request())
    return creds


@pytest.fixture
def host(local_stack):
    return host_url(local_stack.vertex_url, PROJECT, LOCATION)


def test_registry_client_upload_list_get_download_tags_delete(host, credentials, toy_yaml, tmp_path):
    client = RegistryClient(host=host, auth=credentials)
    package, version = client.upload_pipeline(
        str(toy_yaml), tags=["v1", "latest"], extra_headers={"description": "toy"}
    )
    assert package == "toy-template" and version.startswith("sha256:") and len(version) == 71
    # The same content again: the same version.
    assert client.upload_pipeline(str(toy_yaml), tags="again") == (package, version)

    names = [p["name"] for p in client.list_packages()]
    prefix = f"projects/{PROJECT}/locations/{LOCATION}/repositories/{DEFAULT_REPOSITORY}"
    assert f"{prefix}/packages/toy-template" in names
    assert client.get_package(package)["displayName"] == "toy-template"
    [listed] = client.list_versions(package)
    assert listed["name"] == f"{prefix}/packages/{package}/versions/{version}" and listed["description"] == "toy"
    assert {t["name"].rsplit("/", 1)[1] for t in listed["relatedTags"]} == {"v1", "latest", "again"}
    assert client.get_version(package, version)["name"] == listed["name"]
    assert client.get_tag(package, "latest")["version"].endswith(version)

    by_tag = client.download_pipeline(package, tag="latest", file_name=str(tmp_path / "t.yaml"))
    by_version = client.download_pipeline(package, version=version, file_name=str(tmp_path / "v.yaml"))
    assert Path(by_tag).read_bytes() == Path(by_version).read_bytes() == toy_yaml.read_bytes()

    # A second version: tags move on upload, can be created (once) and moved.
    changed = tmp_path / "changed.yaml"
    spec = yaml.safe_load(toy_yaml.read_text())
    spec["root"]["inputDefinitions"]["parameters"]["text"]["defaultValue"] = "changed"
    changed.write_text(yaml.safe_dump(spec))
    _, version2 = client.upload_pipeline(str(changed), tags=["latest"])
    assert version2 != version and client.get_tag(package, "latest")["version"].endswith(version2)
    client.create_tag(package, version, "stable")
    with pytest.raises(Exception) as err:
        client.create_tag(package, version2, "stable")
    assert err.value.response.status_code == 409 and err.value.response.json()["error"]["status"] == "ALREADY_EXISTS"
    assert client.update_tag(package, version2, "stable")["version"].endswith(version2)
    assert sorted(t["name"].rsplit("/", 1)[1] for t in client.list_tags(package)) == ["again", "latest", "stable", "v1"]

    # A tagged version is not deleted; its tags first.
    with pytest.raises(Exception) as err:
        client.delete_version(package, version)
    assert err.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"
    for tag in ("v1", "again"):
        client.delete_tag(package, tag)
    assert client.delete_version(package, version) is True
    assert [v["name"].rsplit("/", 1)[1] for v in client.list_versions(package)] == [version2]
    assert client.delete_package(package) is True
    with pytest.raises(Exception) as err:
        client.get_package(package)
    assert err.value.response.status_code == 404


def test_errors_and_auth(host, credentials, local_stack, tmp_path):
    auth = {"Authorization": f"Bearer {credentials.token}"}
    assert httpx.get(f"{host}/packages").status_code == 401  # no token
    other_repo = host_url(local_stack.vertex_url, PROJECT, LOCATION, "nobody-made-this")
    missing = httpx.get(f"{other_repo}/packages", headers=auth).json()["error"]
    assert missing["status"] == "NOT_FOUND" and DEFAULT_REPOSITORY in missing["message"]
    not_a_pipeline = httpx.post(host, headers=auth, files={"content": ("x.yaml", b"just: text\n")})
    assert not_a_pipeline.status_code == 400 and "not a compiled KFP pipeline" in not_a_pipeline.text
    assert httpx.get(f"{host}/nothing/latest", headers=auth).json()["error"]["status"] == "NOT_FOUND"
    bad_tag = httpx.post(host, headers=auth, files={"content": ("x.yaml", b"a: 1\n")}, data={"tags": "sha256:abc"})
    assert bad_tag.status_code == 400


def test_upload_command_against_the_twin(host, credentials, toy_yaml):
    """``python -m pipeline upload --repo <the twin's host>`` (``make upload``'s command)."""
    from typer.testing import CliRunner

    from pipeline.commands import app

    result = CliRunner().invoke(app, ["upload", "--repo", host, "--tag", "cli", "--template", str(toy_yaml)])
    assert result.exit_code == 0, result.output
    assert f"{host}/toy-template/cli" in result.output


def test_template_uri_resolves_both_url_forms(local_stack, host, credentials, toy_yaml):
    client = RegistryClient(host=host, auth=credentials)
    _, version = client.upload_pipeline(str(toy_yaml), tags=["resolve-me"])
    registry = local_stack._lv.registry
    for uri in (
        f"{host}/toy-template/resolve-me",
        f"https://{LOCATION}-kfp.pkg.dev/{PROJECT}/{DEFAULT_REPOSITORY}/toy-template/resolve-me",
        f"{host}/toy-template/{version}",
    ):
        got = registry.resolve_template(uri)
        assert got["templateMetadata"] == {"version": version}
        assert got["pipelineSpec"]["pipelineInfo"]["name"] == "toy-template"
    for uri, status in (
        (f"{host}/toy-template/no-such-tag", "NOT_FOUND"),
        ("https://example.com/t.yaml", "INVALID_ARGUMENT"),
        (f"https://{LOCATION}-kfp.pkg.dev/{PROJECT}/other-repo/toy-template/latest", "NOT_FOUND"),
    ):
        with pytest.raises(ApiError) as err:
            registry.resolve_template(uri)
        assert err.value.status == status
