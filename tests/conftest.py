"""Shared fixtures: the local Vertex AI + storage emulator, and KFP artifacts on tmp_path."""

import pytest
from kfp import dsl

from localvertex import LocalStack

BUCKET = "gs://local-bucket"
PROJECT = "local-project"


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    """A LocalStack on free ports with its environment applied for the session."""
    with LocalStack(tmp_path_factory.mktemp("localvertex"), bucket="local-bucket", project=PROJECT) as stack:
        stack.apply_env()
        yield stack


@pytest.fixture
def artifact(tmp_path):
    """Factory for KFP output artifacts backed by files in tmp_path."""

    def make(kind=dsl.Dataset, name="artifact"):
        path = tmp_path / name
        return kind(name=name, uri=str(path), metadata={})

    return make
