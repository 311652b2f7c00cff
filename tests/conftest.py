"""Shared fixtures: the local Vertex AI + storage emulator for the whole test session."""

import pytest

from localvertex import LocalStack

BUCKET = "gs://local-bucket"
PROJECT = "local-project"


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    """A LocalStack on free ports with its environment applied for the session."""
    with LocalStack(tmp_path_factory.mktemp("localvertex"), bucket="local-bucket", project=PROJECT) as stack:
        stack.apply_env()
        yield stack
