"""The two image steps run side by side; the one that does not apply stands aside.

The DAG is static (no dsl.If/Else branch merge with dsl.OneOf): synthesize_images stands aside
when ``dataset_uri`` is set, import_dataset when it is empty, and split_manifest takes the
manifest that has rows.
"""

import csv

import pytest
import yaml
from kfp import dsl

from components.import_dataset import import_dataset
from components.manifests import manifest_columns
from components.split_manifest import split_manifest
from components.synthesize_images import synthesize_images
from pipeline.pipeline import COMPILED_YAML


def manifest(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=manifest_columns())
        writer.writeheader()
        writer.writerows(rows)
    return dsl.Dataset(name=path.stem, uri=str(path), metadata={})


def rows(n, folder):
    return [
        {
            "image_name": f"{i}.png",
            "gcs_uri": f"gs://b/{folder}/{i}.png",
            "status": "Pass" if i % 2 else "Defect",
            "defect_type": "None" if i % 2 else "Crack",
            "label": "Status: Pass" if i % 2 else "Status: Defect - Crack identified in main body.",
            "sha256": f"{folder}{i}",
        }
        for i in range(n)
    ]


def split(tmp_path, synthesized, imported):
    outs = {n: dsl.Dataset(name=n, uri=str(tmp_path / f"{n}.csv"), metadata={}) for n in ("train", "val", "test")}
    split_manifest.python_func(
        manifest=synthesized,
        imported_manifest=imported,
        train_manifest=outs["train"],
        validation_manifest=outs["val"],
        test_manifest=outs["test"],
        split_metrics=dsl.Metrics(name="m", uri=str(tmp_path / "m"), metadata={}),
    )
    with open(outs["train"].path) as f:
        return {row["gcs_uri"].split("/")[3] for row in csv.DictReader(f)}


@pytest.mark.parametrize(
    "synthesized, imported, expected",
    [
        (20, 0, {"synth"}),
        (0, 20, {"imported"}),
        (20, None, {"synth"}),  # no imported manifest at all (the component alone)
    ],
)
def test_split_takes_the_manifest_with_rows(tmp_path, synthesized, imported, expected):
    synth = manifest(tmp_path / "synth.csv", rows(synthesized, "synth"))
    other = None if imported is None else manifest(tmp_path / "imported.csv", rows(imported, "imported"))
    assert split(tmp_path, synth, other) == expected


@pytest.mark.parametrize(
    "synthesized, imported, message",
    [
        (20, 20, "both image steps produced a manifest"),
        (0, 0, "the manifest has no rows"),
    ],
)
def test_split_refuses_two_manifests_or_none(tmp_path, synthesized, imported, message):
    with pytest.raises(ValueError, match=message):
        split(
            tmp_path,
            manifest(tmp_path / "s.csv", rows(synthesized, "synth")),
            manifest(tmp_path / "i.csv", rows(imported, "imported")),
        )


def header_only(artifact):
    with open(artifact.path, newline="") as f:
        return list(csv.reader(f)) == [manifest_columns()]


def test_synthesize_stands_aside_when_a_dataset_is_given(tmp_path, capsys):
    out = dsl.Dataset(name="m", uri=str(tmp_path / "m.csv"), metadata={})
    # No storage is touched: the bucket does not even have to exist.
    synthesize_images.python_func(project="p", bucket="gs://nowhere", manifest=out, dataset_uri="gs://bucket/parts/")
    assert header_only(out) and out.metadata["num_images"] == 0
    assert "images are imported" in capsys.readouterr().out


@pytest.mark.parametrize("dataset_uri", ["", "   "])
def test_import_stands_aside_without_a_dataset(tmp_path, capsys, dataset_uri):
    out = dsl.Dataset(name="m", uri=str(tmp_path / "m.csv"), metadata={})
    import_dataset.python_func(project="p", dataset_uri=dataset_uri, manifest=out)
    assert header_only(out)
    assert "images are synthesized" in capsys.readouterr().out


def test_the_compiled_dag_has_no_branch_merge():
    """Every artifact input comes from exactly one producer: no dsl.OneOf for Vertex AI to resolve."""
    spec = yaml.safe_load(COMPILED_YAML.read_text())
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    (tasks,) = [dag["tasks"] for dag in dags if "split-manifest" in dag["tasks"]]
    assert {"synthesize-images", "import-dataset"} <= set(tasks)
    split_inputs = tasks["split-manifest"]["inputs"]["artifacts"]
    assert split_inputs["manifest"]["taskOutputArtifact"]["producerTask"] == "synthesize-images"
    assert split_inputs["imported_manifest"]["taskOutputArtifact"]["producerTask"] == "import-dataset"
    for dag in dags:
        for output in dag.get("outputs", {}).get("artifacts", {}).values():
            assert len(output["artifactSelectors"]) == 1
