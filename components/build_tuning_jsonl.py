"""Component 3: Gemini supervised-tuning JSONL files, validated line by line."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Metrics, Output

from components.clients import parse_gcs_uri
from components.dataset_rules import check_split_rows, jsonl_folder_path, jsonl_texts, oversample_rows
from components.packages import BASE_IMAGE, STORAGE_PACKAGES
from components.shipping import lightweight_component


# Building and validating the lines are pure functions in components/dataset_rules.py; this
# component reads the manifests, looks up image sizes and uploads.
@lightweight_component(base_image=BASE_IMAGE, packages_to_install=STORAGE_PACKAGES, install_kfp_package=False)
def build_tuning_jsonl(
    project: str,
    bucket: str,
    prompt: str,
    train_manifest: Input[Dataset],
    validation_manifest: Input[Dataset],
    test_manifest: Input[Dataset],
    jsonl_metrics: Output[Metrics],
    system_instruction: str = "",
    oversample_rare_classes: bool = False,
    jsonl_folder: str = "tuning",
    media_resolution: str = "",
) -> NamedTuple("Outputs", [("train_jsonl_uri", str), ("validation_jsonl_uri", str), ("test_jsonl_uri", str)]):
    """Writes train, validation and test JSONL in Gemini's ``contents`` format.

    Each line is one lesson: a user turn with the prompt and the image as ``fileData``,
    and a model turn with the label. Every line is checked against Vertex AI's limits
    before anything is written; the first problem fails the task naming file, line and fix.

    Args:
        project: Google Cloud project that owns the bucket.
        bucket: ``gs://`` URI; files go to ``{bucket}/{jsonl_folder}/{digest}/{split}.jsonl``
            where digest is a hash of the three files' content: written once, never
            overwritten, so a running tuning job or a cached task keeps its own data.
        prompt: the instruction text of every user turn.
        train_manifest: CSV with gcs_uri and label columns.
        validation_manifest: CSV with gcs_uri and label columns.
        test_manifest: CSV with gcs_uri and label columns.
        jsonl_metrics: line counts per file (``jsonl_*`` names).
        system_instruction: optional system instruction added to every line.
        oversample_rare_classes: repeat examples of rarer labels in the training file
            until each label has about as many lines as the most common one.
        jsonl_folder: folder inside the bucket.
        media_resolution: "" (the model's default), or "low", "medium", "high": written as
            each image part's ``mediaResolution.level`` (Gemini 3 base models only; the
            pipeline checks it against the base model before this task runs).

    Returns:
        The ``gs://`` URIs of the train, validation and test files; "" for an empty split.
    """
    import csv
    import json
    from collections import namedtuple
    from concurrent.futures import ThreadPoolExecutor

    from google.cloud import storage

    if not prompt.strip():
        raise ValueError("prompt is empty: every user turn needs instruction text")
    bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
    client = storage.Client(project=project)

    def read_rows(artifact, split):
        with open(artifact.path, newline="") as f:
            return check_split_rows(list(csv.DictReader(f)), split)

    def object_sizes(uris):
        """{uri: size in bytes} of the images that exist."""

        def size(uri):
            name, path = parse_gcs_uri(uri)
            blob = client.bucket(name).get_blob(path)
            return uri, blob.size if blob else None

        with ThreadPoolExecutor(max_workers=8) as pool:
            return {uri: value for uri, value in pool.map(size, sorted(set(uris))) if value is not None}

    splits = {
        "train": read_rows(train_manifest, "train"),
        "validation": read_rows(validation_manifest, "validation"),
        "test": read_rows(test_manifest, "test"),
    }
    if not splits["train"]:
        raise ValueError("the training split is empty: nothing to tune on")
    if oversample_rare_classes:
        splits["train"] = oversample_rows(splits["train"])
    sizes = object_sizes(row["gcs_uri"] for rows in splits.values() for row in rows)
    texts = jsonl_texts(splits, prompt, system_instruction, sizes, media_resolution)

    folder = jsonl_folder_path(jsonl_folder, texts)
    uris = {}
    for split, text in texts.items():  # written only once every file is valid
        if not text:  # an empty validation or test split: no file, an empty URI
            uris[split] = ""
            continue
        path = f"{folder}/{split}.jsonl"
        client.bucket(bucket_name).blob(path).upload_from_string(text, content_type="application/jsonl")
        uris[split] = f"gs://{bucket_name}/{path}"
        jsonl_metrics.log_metric(f"jsonl_{split}_lines", len(splits[split]))
        print(f"wrote {len(splits[split])} lines to {uris[split]}", flush=True)
    with open(jsonl_metrics.path, "w") as f:  # a file at .path lets KFP cache this task
        json.dump(uris, f)
    outputs = namedtuple("Outputs", ["train_jsonl_uri", "validation_jsonl_uri", "test_jsonl_uri"])
    return outputs(uris["train"], uris["validation"], uris["test"])
