"""Component: the golden set, a fixed evaluation set that persists across runs."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.champion import golden_id_of, golden_rows_from_jsonl, inspector_paths, inspector_slug, run_object
from components.dataset_rules import JSONL_RULES, jsonl_texts
from components.helpers import parse_gcs_uri
from components.packages import BASE_IMAGE, STORAGE_PACKAGES


@dsl.component(
    base_image=BASE_IMAGE,
    packages_to_install=STORAGE_PACKAGES,
    install_kfp_package=False,
    additional_funcs=[*JSONL_RULES, inspector_slug, inspector_paths, run_object, golden_id_of, golden_rows_from_jsonl],
)
def prepare_golden_set(
    project: str,
    bucket: str,
    prompt: str,
    train_manifest: Input[Dataset],
    validation_manifest: Input[Dataset],
    test_manifest: Input[Dataset],
    train_without_golden: Output[Dataset],
    validation_without_golden: Output[Dataset],
    golden_manifest: Output[Dataset],
    golden_metrics: Output[Metrics],
    tuned_model_display_name: str = "visual-defect-inspector",
    run_name: str = "",
    system_instruction: str = "",
    golden_test_uri: str = "",
) -> NamedTuple("Outputs", [("golden_jsonl_uri", str), ("golden_id", str)]):
    """Finds or creates the inspector's golden set and keeps its images out of training.

    The golden set is, in this order: the one ``golden_test_uri`` names; else the one stored at
    ``{bucket}/inspectors/<inspector>/golden/manifest.csv``; else it is created once from this
    run's test split. Creating copies each image to ``golden/images/<sha256>.<ext>`` (content
    addressed, never overwritten, so later runs cannot change it) and writes the manifest with
    ``if_generation_match=0``: if another run created it first, that one is used.

    Every row of this run's training and validation splits whose image content (``sha256``)
    is in the golden set is dropped, so no golden image is ever trained or selected on. The
    golden JSONL is written for this run with this run's prompt and system instruction to
    ``inspectors/<inspector>/runs/<run>/golden.jsonl``.

    Args:
        project: Google Cloud project that owns the bucket.
        bucket: ``gs://`` URI of the pipeline's bucket.
        prompt: the instruction text of every user turn (as build_tuning_jsonl writes it).
        train_manifest, validation_manifest, test_manifest: the split's manifests (CSV with
            gcs_uri, label and sha256 columns).
        train_without_golden, validation_without_golden: the training and validation
            manifests without golden images (same columns).
        golden_manifest: the golden set's rows (gcs_uri, label, sha256, ...).
        golden_metrics: ``golden_set_examples``, ``golden_set_created`` (1 when this run created
            it), ``golden_set_excluded_train`` and ``golden_set_excluded_validation``.
        tuned_model_display_name: the inspector; golden sets are kept per inspector.
        run_name: the pipeline run's name (``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``).
        system_instruction: optional system instruction of every line.
        golden_test_uri: a golden set to use: a manifest CSV (gcs_uri and label columns,
            sha256 optional) or a Gemini SFT JSONL (its images and final answers); "" uses
            the stored one or creates it.

    Returns:
        golden_jsonl_uri: the golden set as a Gemini SFT JSONL for this run.
        golden_id: the set's identity (a hash of its images' content and labels), stored with
            every champion so that figures are only compared on the same set.
    """
    import csv
    import hashlib
    import io
    import json
    from collections import namedtuple
    from concurrent.futures import ThreadPoolExecutor

    from google.api_core import exceptions
    from google.cloud import storage

    client = storage.Client(project=project)
    bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
    home = client.bucket(bucket_name)
    paths = inspector_paths(tuned_model_display_name)

    def read_rows(artifact):
        with open(artifact.path, newline="") as f:
            reader = csv.DictReader(f)
            return reader.fieldnames or [], list(reader)

    def blob_of(uri):
        name, path = parse_gcs_uri(uri)
        return client.bucket(name).blob(path)

    def content_hash(uri):
        return hashlib.sha256(blob_of(uri).download_as_bytes()).hexdigest()

    def with_hashes(rows):
        """Rows with a sha256 each (downloaded and hashed where the manifest has none)."""
        missing = [row for row in rows if not row.get("sha256")]
        with ThreadPoolExecutor(max_workers=8) as pool:
            for row, digest in zip(missing, pool.map(lambda r: content_hash(r["gcs_uri"]), missing), strict=True):
                row["sha256"] = digest
        return rows

    def manifest_text(rows):
        fields = ["gcs_uri", "label", "sha256"] + sorted(
            {k for row in rows for k in row} - {"gcs_uri", "label", "sha256"}
        )
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    def stored_golden():
        blob = home.get_blob(paths["golden_manifest"])
        return None if blob is None else list(csv.DictReader(io.StringIO(blob.download_as_text())))

    created = 0
    if golden_test_uri.strip():
        uri = golden_test_uri.strip()
        text = blob_of(uri).download_as_text()
        if uri.lower().endswith(".jsonl"):
            golden = golden_rows_from_jsonl(text, uri)
        else:
            golden = list(csv.DictReader(io.StringIO(text)))
            if not golden or not all(row.get("gcs_uri") and (row.get("label") or "").strip() for row in golden):
                raise ValueError(f"{uri}: a golden manifest needs rows with gcs_uri and label")
        golden, source = with_hashes(golden), f"golden_test_uri {uri}"
    else:
        golden, source = stored_golden(), f"gs://{bucket_name}/{paths['golden_manifest']}"
        if golden is None:
            _, test_rows = read_rows(test_manifest)
            if not test_rows:
                raise ValueError(
                    "there is no golden set yet and this run's test split is empty: set golden_test_uri, "
                    "or give the test split some images (train_fraction + validation_fraction < 1)"
                )
            golden = []
            for row in with_hashes([dict(r) for r in test_rows]):
                extension = row["gcs_uri"].rsplit(".", 1)[-1].lower()
                target = f"{paths['golden_images']}/{row['sha256']}.{extension}"
                if home.get_blob(target) is None:  # content addressed: an existing copy is the same image
                    source_blob = blob_of(row["gcs_uri"])
                    source_blob.bucket.copy_blob(source_blob, home, target)
                golden.append(
                    {
                        **row,
                        "gcs_uri": f"gs://{bucket_name}/{target}",
                        "source_uri": row["gcs_uri"],
                        "created_by_run": run_name,
                    }
                )
            try:
                home.blob(paths["golden_manifest"]).upload_from_string(
                    manifest_text(golden), content_type="text/csv", if_generation_match=0
                )
                created, source = 1, f"created from this run's test split at {source}"
            except exceptions.PreconditionFailed:  # another run created it meanwhile: theirs stands
                golden, source = stored_golden(), f"{source} (created by another run meanwhile)"
    if not golden:
        raise ValueError(f"the golden set from {source} has no rows")
    golden_hashes = {row["sha256"] for row in golden}
    golden_id = golden_id_of(golden)
    print(f"golden set {golden_id}: {len(golden)} images, {source}", flush=True)

    excluded = {}
    for split, artifact, output in (
        ("train", train_manifest, train_without_golden),
        ("validation", validation_manifest, validation_without_golden),
    ):
        fields, rows = read_rows(artifact)
        rows = with_hashes(rows) if rows else rows
        kept = [row for row in rows if row["sha256"] not in golden_hashes]
        excluded[split] = len(rows) - len(kept)
        if split == "train" and rows and not kept:
            raise ValueError("every training image is in the golden set: nothing is left to train on")
        fields = list(fields) + (["sha256"] if rows and "sha256" not in fields else [])
        with open(output.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields or ["gcs_uri", "label", "sha256"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
        output.metadata["examples"] = len(kept)
        if excluded[split]:
            print(f"{split}: {excluded[split]} golden image(s) left out, {len(kept)} kept", flush=True)

    with open(golden_manifest.path, "w", newline="") as f:
        f.write(manifest_text(golden))
    golden_manifest.metadata.update({"examples": len(golden), "golden_id": golden_id, "source": source})

    sizes = {}
    for row in golden:
        blob = client.bucket(parse_gcs_uri(row["gcs_uri"])[0]).get_blob(parse_gcs_uri(row["gcs_uri"])[1])
        if blob is not None:
            sizes[row["gcs_uri"]] = blob.size
    text = jsonl_texts({"golden": golden}, prompt, system_instruction, sizes)["golden"]
    jsonl_path = run_object(tuned_model_display_name, run_name, "golden.jsonl")
    home.blob(jsonl_path).upload_from_string(text, content_type="application/jsonl")
    jsonl_uri = f"gs://{bucket_name}/{jsonl_path}"

    for name, value in (
        ("golden_set_examples", len(golden)),
        ("golden_set_created", created),
        ("golden_set_excluded_train", excluded["train"]),
        ("golden_set_excluded_validation", excluded["validation"]),
    ):
        golden_metrics.log_metric(name, value)
    with open(golden_metrics.path, "w") as f:
        json.dump({"golden_id": golden_id, "source": source, "jsonl": jsonl_uri}, f)
    outputs = namedtuple("Outputs", ["golden_jsonl_uri", "golden_id"])
    return outputs(jsonl_uri, golden_id)
