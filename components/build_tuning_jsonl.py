"""Component 3: Gemini supervised-tuning JSONL files, validated line by line."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.helpers import parse_gcs_uri
from components.packages import BASE_IMAGE, STORAGE_PACKAGES


@dsl.component(base_image=BASE_IMAGE, packages_to_install=STORAGE_PACKAGES, install_kfp_package=False,
               additional_funcs=[parse_gcs_uri])
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

    Returns:
        The ``gs://`` URIs of the train, validation and test files; "" for an empty split.
    """
    import csv
    import hashlib
    import json
    import math
    from collections import Counter, namedtuple
    from concurrent.futures import ThreadPoolExecutor

    from google.cloud import storage

    mime_types = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
                  "heic": "image/heic", "heif": "image/heif"}
    max_image_bytes, max_images_per_example = 20 * 1024 * 1024, 30
    if not prompt.strip():
        raise ValueError("prompt is empty: every user turn needs instruction text")
    bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
    client = storage.Client(project=project)

    def read_rows(artifact, split):
        with open(artifact.path, newline="") as f:
            rows = list(csv.DictReader(f))
        for number, row in enumerate(rows, start=2):  # line 1 is the header
            if not (row.get("gcs_uri") or "").startswith("gs://") or not (row.get("label") or "").strip():
                raise ValueError(f"{split} manifest line {number}: needs a gs:// gcs_uri and a non-empty label, "
                                 f"got {row.get('gcs_uri')!r} and {row.get('label')!r}")
        return rows

    def lesson(row):
        extension = row["gcs_uri"].rsplit(".", 1)[-1].lower()
        line = {"contents": [
            {"role": "user", "parts": [
                {"text": prompt},
                {"fileData": {"mimeType": mime_types.get(extension, f"image/{extension}"), "fileUri": row["gcs_uri"]}},
            ]},
            {"role": "model", "parts": [{"text": row["label"].strip()}]},
        ]}
        if system_instruction.strip():
            line["systemInstruction"] = {"role": "system", "parts": [{"text": system_instruction.strip()}]}
        return line

    def problem(line, sizes):
        """The first reason this line would be refused by Vertex AI, or None."""
        contents = line.get("contents") or []
        if not contents:
            return "no contents"
        for i, turn in enumerate(contents):
            expected = "user" if i % 2 == 0 else "model"
            if turn.get("role") != expected:
                return f"contents[{i}].role is {turn.get('role')!r}; roles must alternate user/model"
            if not any((p.get("text") or "").strip() for p in turn.get("parts", [])):
                return f"contents[{i}] has no non-empty text part"
        if contents[-1]["role"] != "model":
            return "the last turn must be the model's answer"
        files = [p["fileData"] for turn in contents for p in turn["parts"] if "fileData" in p]
        if len(files) > max_images_per_example:
            return f"{len(files)} images; Vertex AI accepts at most {max_images_per_example} per example"
        for file in files:
            if file["mimeType"] not in mime_types.values():
                return f"{file['fileUri']} has the unsupported type {file['mimeType']}; use PNG, JPEG, WebP or HEIC"
            size = sizes.get(file["fileUri"])
            if size is None:
                return f"{file['fileUri']} does not exist"
            if size > max_image_bytes:
                return f"{file['fileUri']} is {size / 2**20:.1f} MB; Vertex AI accepts at most 20 MB per image"
        return None

    def object_sizes(uris):
        def size(uri):
            name, path = parse_gcs_uri(uri)
            blob = client.bucket(name).get_blob(path)
            return uri, blob.size if blob else None
        with ThreadPoolExecutor(max_workers=8) as pool:
            return {uri: value for uri, value in pool.map(size, sorted(set(uris))) if value is not None}

    def oversample(rows):
        counts = Counter(row["label"] for row in rows)
        top = max(counts.values())
        out = []
        for row in rows:
            out.extend([row] * math.ceil(top / counts[row["label"]]))
        # Trim each label back to ~top lines so rare classes are not over-represented.
        kept, seen = [], Counter()
        for row in out:
            if seen[row["label"]] < top:
                seen[row["label"]] += 1
                kept.append(row)
        return kept

    splits = {"train": read_rows(train_manifest, "train"), "validation": read_rows(validation_manifest, "validation"),
              "test": read_rows(test_manifest, "test")}
    if not splits["train"]:
        raise ValueError("the training split is empty: nothing to tune on")
    if oversample_rare_classes:
        splits["train"] = oversample(splits["train"])
    sizes = object_sizes(row["gcs_uri"] for rows in splits.values() for row in rows)

    files = {}
    for split, rows in splits.items():
        lines = [lesson(row) for row in rows]
        for number, line in enumerate(lines, start=1):
            reason = problem(line, sizes)
            if reason:
                raise ValueError(f"{split}.jsonl line {number}: {reason}")
        files[split] = "".join(json.dumps(line) + "\n" for line in lines)

    digest = hashlib.sha256("".join(files.values()).encode()).hexdigest()[:16]
    uris = {}
    for split, text in files.items():  # written only once every file is valid
        if not text:  # an empty validation or test split: no file, an empty URI
            uris[split] = ""
            continue
        path = f"{jsonl_folder.strip('/')}/{digest}/{split}.jsonl"
        client.bucket(bucket_name).blob(path).upload_from_string(text, content_type="application/jsonl")
        uris[split] = f"gs://{bucket_name}/{path}"
        jsonl_metrics.log_metric(f"jsonl_{split}_lines", len(splits[split]))
        print(f"wrote {len(splits[split])} lines to {uris[split]}", flush=True)
    with open(jsonl_metrics.path, "w") as f:  # a file at .path lets KFP cache this task
        json.dump(uris, f)
    outputs = namedtuple("Outputs", ["train_jsonl_uri", "validation_jsonl_uri", "test_jsonl_uri"])
    return outputs(uris["train"], uris["validation"], uris["test"])
