"""Component: the golden set, a fixed evaluation set that persists across runs."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Metrics, Output

from components.champion import golden_id_of, golden_rows_from_jsonl, inspector_paths, run_object
from components.champion_store import inspector_name
from components.clients import parse_gcs_uri
from components.dataset_rules import jsonl_texts
from components.labels import defect_type_of, is_pass_answer
from components.packages import BASE_IMAGE, STORAGE_PACKAGES
from components.shipping import lightweight_component
from components.split_manifest import read_manifest_rows


def row_class(row):
    """The class of a manifest row: "Pass" or its defect type (the status and defect_type
    columns when present, else what the label says; "Defect" for a label naming no type)."""
    status, kind = (row.get("status") or "").strip(), (row.get("defect_type") or "").strip()
    if status == "Pass":
        return "Pass"
    if status == "Defect" and kind and kind != "None":
        return kind
    label = row.get("label") or ""
    return "Pass" if is_pass_answer(label) else defect_type_of(label) or "Defect"


def class_counts_of(rows):
    """{class: images} of manifest rows."""
    counts = {}
    for row in rows:
        counts[row_class(row)] = counts.get(row_class(row), 0) + 1
    return counts


def class_mismatch_problem(run_classes, golden_classes, inspector, source):
    """Why this run must not be judged on the inspector's golden set (its classes differ), or None."""
    if set(run_classes) == set(golden_classes):
        return None

    def names(classes):
        return ", ".join(sorted(classes, key=str.lower)) or "none"

    return (
        f"this run's classes ({names(run_classes)}) differ from those of inspector {inspector}'s golden set "
        f"({names(golden_classes)}, {source}): a champion and its golden set belong to one set of classes. "
        "Set tuned_model_display_name to a new name for this set of classes (it gets a golden set and a "
        "champion of its own), or give a golden set with these classes as golden_test_uri"
    )


def golden_shortfall(test_counts, classes, minimum):
    """{class: test images} of the classes with fewer than ``minimum`` test images: a golden
    set made from this test split would be too small to judge them, so none is created."""
    return {c: int(test_counts.get(c, 0)) for c in classes if int(test_counts.get(c, 0)) < minimum}


def gcs_blob(client, uri):
    """The storage blob a ``gs://`` URI names."""
    name, path = parse_gcs_uri(uri)
    return client.bucket(name).blob(path)


def with_content_hashes(client, rows):
    """``rows`` with a sha256 each (downloaded and hashed where the manifest has none)."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    def content_hash(row):
        return hashlib.sha256(gcs_blob(client, row["gcs_uri"]).download_as_bytes()).hexdigest()

    missing = [row for row in rows if not row.get("sha256")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for row, digest in zip(missing, pool.map(content_hash, missing), strict=True):
            row["sha256"] = digest
    return rows


def golden_manifest_text(rows):
    """A golden manifest CSV: gcs_uri, label and sha256 first, then every other column sorted."""
    import csv
    import io

    fields = ["gcs_uri", "label", "sha256"] + sorted({k for row in rows for k in row} - {"gcs_uri", "label", "sha256"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def stored_golden_rows(home, manifest_path):
    """The rows of the golden manifest at ``manifest_path`` in bucket ``home``, or None."""
    import csv
    import io

    blob = home.get_blob(manifest_path)
    return None if blob is None else list(csv.DictReader(io.StringIO(blob.download_as_text())))


def golden_rows_from_uri(client, uri):
    """The golden set ``golden_test_uri`` names: a Gemini SFT JSONL or a manifest CSV with
    gcs_uri and label on every row; with hashes."""
    import csv
    import io

    text = gcs_blob(client, uri).download_as_text()
    if uri.lower().endswith(".jsonl"):
        golden = golden_rows_from_jsonl(text, uri)
    else:
        golden = list(csv.DictReader(io.StringIO(text)))
        if not golden or not all(row.get("gcs_uri") and (row.get("label") or "").strip() for row in golden):
            raise ValueError(f"{uri}: a golden manifest needs rows with gcs_uri and label")
    return with_content_hashes(client, golden)


def create_golden_set(client, home, paths, test_rows, run_name):
    """Copies the test split into the inspector's golden set; (rows, created, source).

    Each image goes to ``golden/images/<sha256>.<ext>`` (content addressed, never
    overwritten) and the manifest is written with ``if_generation_match=0``: when another run
    created it meanwhile, theirs stands and is returned (created 0)."""
    from google.api_core import exceptions

    rows, where = [], f"gs://{home.name}/{paths['golden_manifest']}"
    for row in with_content_hashes(client, [dict(r) for r in test_rows]):
        extension = row["gcs_uri"].rsplit(".", 1)[-1].lower()
        target = f"{paths['golden_images']}/{row['sha256']}.{extension}"
        if home.get_blob(target) is None:  # content addressed: an existing copy is the same image
            source_blob = gcs_blob(client, row["gcs_uri"])
            source_blob.bucket.copy_blob(source_blob, home, target)
        rows.append(
            {**row, "gcs_uri": f"gs://{home.name}/{target}", "source_uri": row["gcs_uri"], "created_by_run": run_name}
        )
    try:
        home.blob(paths["golden_manifest"]).upload_from_string(
            golden_manifest_text(rows), content_type="text/csv", if_generation_match=0
        )
        return rows, 1, f"created from this run's test split at {where}"
    except exceptions.PreconditionFailed:  # another run created it meanwhile: theirs stands
        return stored_golden_rows(home, paths["golden_manifest"]), 0, f"{where} (created by another run meanwhile)"


def find_golden_set(client, home, paths, golden_test_uri, test_rows, run_classes, min_golden_per_class, run_name):
    """The golden set to judge on: (rows, created, stored, source).

    In this order: the one ``golden_test_uri`` names; the inspector's stored one; one created
    from the test split (create_golden_set) when it has ``min_golden_per_class`` images of
    every class; else the test split stands in, unstored (stored False)."""
    if golden_test_uri.strip():
        uri = golden_test_uri.strip()
        return golden_rows_from_uri(client, uri), 0, True, f"golden_test_uri {uri}"
    golden = stored_golden_rows(home, paths["golden_manifest"])
    if golden is not None:
        return golden, 0, True, f"gs://{home.name}/{paths['golden_manifest']}"
    if not test_rows:
        raise ValueError(
            "there is no golden set yet and this run's test split is empty: set golden_test_uri, "
            "or give the test split some images (train_fraction + validation_fraction < 1)"
        )
    short = golden_shortfall(class_counts_of(test_rows), run_classes, min_golden_per_class)
    if short:  # too small to judge later runs on: never stored; this run's test split stands in
        source = (
            f"no golden set created: this run's test split has fewer than min_golden_per_class="
            f"{min_golden_per_class} images of {', '.join(f'{c} ({n})' for c, n in short.items())}"
        )
        print(f"warning: {source}; nothing will be promoted", flush=True)
        return [dict(r) for r in test_rows], 0, False, source
    golden, created, source = create_golden_set(client, home, paths, test_rows, run_name)
    return golden, created, True, source


def write_without_golden(client, split, manifest_path, output, golden_hashes):
    """Writes the split's manifest without its golden images to ``output``; returns how many
    rows were left out. A training split left empty is an error."""
    import csv

    fields, rows = read_manifest_rows(manifest_path)
    rows = with_content_hashes(client, rows) if rows else rows
    kept = [row for row in rows if row["sha256"] not in golden_hashes]
    if split == "train" and rows and not kept:
        raise ValueError("every training image is in the golden set: nothing is left to train on")
    fields = list(fields) + (["sha256"] if rows and "sha256" not in fields else [])
    with open(output.path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields or ["gcs_uri", "label", "sha256"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    output.metadata["examples"] = len(kept)
    if len(rows) - len(kept):
        print(f"{split}: {len(rows) - len(kept)} golden image(s) left out, {len(kept)} kept", flush=True)
    return len(rows) - len(kept)


def image_sizes_of(client, rows):
    """{gcs_uri: bytes} of the rows' images that exist."""
    sizes = {}
    for row in rows:
        blob = client.bucket(parse_gcs_uri(row["gcs_uri"])[0]).get_blob(parse_gcs_uri(row["gcs_uri"])[1])
        if blob is not None:
            sizes[row["gcs_uri"]] = blob.size
    return sizes


@lightweight_component(base_image=BASE_IMAGE, packages_to_install=STORAGE_PACKAGES, install_kfp_package=False)
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
    dataset_uri: str = "",
    min_golden_per_class: int = 3,
) -> NamedTuple("Outputs", [("golden_jsonl_uri", str), ("golden_id", str), ("golden_check", str)]):
    """Finds or creates the inspector's golden set and keeps its images out of training.

    The golden set is, in this order: the one ``golden_test_uri`` names; else the one stored at
    ``{bucket}/inspectors/<inspector>/golden/manifest.csv``; else it is created once from this
    run's test split, but only when that split has at least ``min_golden_per_class`` images of
    every class of the run: a smaller set is never stored (this run judges on its test split,
    promotes nothing and says why; the next run with enough data creates it). Creating copies each image to ``golden/images/<sha256>.<ext>`` (content
    addressed, never overwritten, so later runs cannot change it) and writes the manifest with
    ``if_generation_match=0``: if another run created it first, that one is used.

    Every row of this run's training and validation splits whose image content (``sha256``)
    is in the golden set is dropped, so no golden image is ever trained or selected on. The
    golden JSONL is written for this run with this run's prompt and system instruction to
    ``inspectors/<inspector>/runs/<run>/golden.jsonl``.

    A golden set whose classes differ from this run's (all three splits) is refused before
    any tuning: the run names both class sets and the fix (``class_mismatch_problem``).

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
        dataset_uri: the run's imported dataset; with the default inspector name it names
            the inspector (champion_store ``inspector_name``).
        min_golden_per_class: the fewest test-split images of every class a golden set is
            created from.

    Returns:
        golden_jsonl_uri: the golden set as a Gemini SFT JSONL for this run.
        golden_id: the set's identity (a hash of its images' content and labels), stored with
            every champion so that figures are only compared on the same set; "" when
            there is no golden set yet.
        golden_check: JSON for decide_promotion: {"inspector", "classes" (this run's),
            "test_counts", "golden_counts" (images per class), "golden_stored" (False: no
            golden set yet, the test split stood in)}.
    """
    import json
    from collections import namedtuple

    from google.cloud import storage

    client = storage.Client(project=project)
    bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
    home = client.bucket(bucket_name)
    inspector = inspector_name(tuned_model_display_name, dataset_uri)
    paths = inspector_paths(inspector)

    manifests = {"train": train_manifest, "validation": validation_manifest, "test": test_manifest}
    split_rows = {split: read_manifest_rows(artifact.path)[1] for split, artifact in manifests.items()}
    run_classes = sorted(class_counts_of([r for rows in split_rows.values() for r in rows]), key=str.lower)
    golden, created, stored, source = find_golden_set(
        client, home, paths, golden_test_uri, split_rows["test"], run_classes, min_golden_per_class, run_name
    )
    if not golden:
        raise ValueError(f"the golden set from {source} has no rows")
    if stored:
        problem = class_mismatch_problem(run_classes, class_counts_of(golden), inspector, source)
        if problem:
            raise ValueError(problem)
    golden_hashes = {row["sha256"] for row in golden}
    golden_id = golden_id_of(golden) if stored else ""
    print(f"golden set {golden_id or '(none)'} of {inspector}: {len(golden)} images, {source}", flush=True)

    excluded = {
        split: write_without_golden(client, split, manifests[split].path, output, golden_hashes)
        for split, output in (("train", train_without_golden), ("validation", validation_without_golden))
    }
    with open(golden_manifest.path, "w", newline="") as f:
        f.write(golden_manifest_text(golden))
    golden_manifest.metadata.update({"examples": len(golden), "golden_id": golden_id, "source": source})

    text = jsonl_texts({"golden": golden}, prompt, system_instruction, image_sizes_of(client, golden))["golden"]
    jsonl_path = run_object(inspector, run_name, "golden.jsonl")
    home.blob(jsonl_path).upload_from_string(text, content_type="application/jsonl")
    jsonl_uri = f"gs://{bucket_name}/{jsonl_path}"

    for name, value in (
        ("golden_set_examples", len(golden) if stored else 0),
        ("golden_set_created", created),
        ("golden_set_excluded_train", excluded["train"]),
        ("golden_set_excluded_validation", excluded["validation"]),
    ):
        golden_metrics.log_metric(name, value)
    with open(golden_metrics.path, "w") as f:
        json.dump({"golden_id": golden_id, "source": source, "jsonl": jsonl_uri}, f)
    check = {
        "inspector": inspector,
        "classes": run_classes,
        "test_counts": class_counts_of(split_rows["test"]),
        "golden_counts": class_counts_of(golden) if stored else {},
        "golden_stored": stored,
        "source": source,
    }
    outputs = namedtuple("Outputs", ["golden_jsonl_uri", "golden_id", "golden_check"])
    return outputs(jsonl_uri, golden_id, json.dumps(check, sort_keys=True))
