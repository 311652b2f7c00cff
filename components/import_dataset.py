"""Component 1 (bring your own images): import a labelled image set as the image manifest.

The alternative to ``synthesize_images`` when the pipeline parameter ``dataset_uri`` is set.
It writes the same manifest (image_name, gcs_uri, status, defect_type, label, sha256), so the
split, JSONL, tuning, evaluation and summary steps run unchanged.
"""

from kfp.dsl import Dataset, Output

from components.clients import parse_gcs_uri
from components.dataset_rules import (
    check_dataset_uri,
    class_set_problem,
    content_conflicts,
    csv_records,
    dataset_layout,
    dataset_source,
    decode_manifest_text,
    drop_repeated_rows,
    empty_folder_message,
    failure_message,
    folder_layout,
    folder_prefix,
    folder_records,
    image_digest,
    image_name_problem,
    image_pixels_problem,
    image_ref,
    image_size_problem,
    import_report,
    jsonl_records,
    label_parameter_warnings,
    layout_notes,
    manifest_layout,
    manifest_metadata,
    manifest_row,
    problem_bound,
    skipped_files_note,
    small_class_problems,
)
from components.manifests import write_empty_manifest, write_manifest
from components.packages import BASE_IMAGE, IMAGE_PACKAGES
from components.progress import report_progress
from components.shipping import lightweight_component


def read_dataset(client, source, layout):
    """(records, problems, layout seen, prompts dropped) of the dataset: its folder listing or
    manifest read into records. Notes on skipped files are printed; a missing manifest or an
    empty folder raises at once (there is nothing else to check)."""
    import csv
    import io

    if layout == "folder":
        prefix = folder_prefix(source["object_path"])
        listing = [(blob.name, blob.size) for blob in client.list_blobs(source["bucket"], prefix=prefix)]
        records, problems, skipped = folder_records(listing, source)
        seen = folder_layout([name[len(prefix) :] for name, _ in listing])
        for line in layout_notes(seen, source["dataset_uri"]) + (
            [skipped_files_note(skipped, source["dataset_uri"])] if skipped else []
        ):
            print(line, flush=True)
        if not records and not problems:
            raise ValueError(empty_folder_message(source))
        return records, problems, seen, 0
    blob = client.bucket(source["bucket"]).get_blob(source["object_path"])
    if blob is None:
        raise FileNotFoundError(f"dataset_uri {source['dataset_uri']} does not exist")
    text = decode_manifest_text(blob.download_as_bytes(), source["dataset_uri"])
    if layout == "csv":
        records, problems = csv_records(text, source)
        seen = manifest_layout(next(csv.reader(io.StringIO(text)), []), source["file_name"])
        for line in layout_notes(seen, source["dataset_uri"]):
            print(line, flush=True)
        return records, problems, seen, 0
    records, problems, prompts_dropped = jsonl_records(text, source)
    return records, problems, {"kind": "jsonl", "name": f"JSONL manifest {source['file_name']}"}, prompts_dropped


def check_images(client, records, workers, bound, problems):
    """Checks every image in parallel (nothing is kept in memory but its sha256, set on its
    record: None when it failed), adding its problems to ``problems``. Stops scheduling once
    ``bound`` problems are known; returns how many images were left unchecked."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from google.api_core import exceptions as gcs_errors

    def check(record):
        """(sha256, None) or (None, problem) for one image."""
        problem = image_name_problem(record)
        if problem:
            return None, problem
        name, path = parse_gcs_uri(record["gcs_uri"])
        listed = record["size"] is not None  # a folder listing gave the size: no metadata request
        try:
            blob = client.bucket(name).blob(path) if listed else client.bucket(name).get_blob(path)
            if blob is None:
                return None, f"{image_ref(record)} does not exist"
            problem = image_size_problem(record, record["size"] if listed else blob.size)
            if problem:
                return None, problem
            data = blob.download_as_bytes()
        except gcs_errors.NotFound:
            return None, f"{image_ref(record)} does not exist"
        except gcs_errors.GoogleAPICallError as error:
            return None, f"{image_ref(record)} cannot be read: {error}"
        problem = image_pixels_problem(record, data)  # the header only: refused before anything decodes it
        return (None, problem) if problem else image_digest(record, data)

    total, done, started = len(records), 0, time.monotonic()
    step, chunk = max(1, total // 10), max(1, workers) * 16  # in chunks: stop soon after the bound
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, total, chunk):
            if len(problems) >= bound:
                break
            batch = records[start : start + chunk]
            for record, (digest, problem) in zip(batch, pool.map(check, batch), strict=True):
                record["sha256"] = digest
                problems += [problem] if problem else []
                done += 1
                if done % step == 0 or done == total:
                    report_progress(done, total, "images", "checked", time.monotonic() - started)
    for record in records[done:]:
        record["sha256"] = None
    return total - done


# The checks and rules are pure functions in components/dataset_rules.py (tested without a
# server); this component only lists, downloads and writes.
@lightweight_component(base_image=BASE_IMAGE, packages_to_install=IMAGE_PACKAGES, install_kfp_package=False)
def import_dataset(
    project: str,
    dataset_uri: str,
    manifest: Output[Dataset],
    label_template: str = "",
    pass_label: str = "Status: Pass",
    imbalance_warning_ratio: float = 5.0,
    download_workers: int = 8,
):
    """Reads a labelled image set from Cloud Storage, checks every image, writes the manifest.

    Accepted layouts of ``dataset_uri``:

    * A folder tree ``gs://bucket/prefix/<class>/<image>`` (the URI ends with "/" or its last
      segment has no extension). The folder name is the class: ``pass``, ``passed``, ``ok``,
      ``good`` and ``normal`` (any case) mean a good product; ``defect``, ``defective``, ``ng``,
      ``nok``, ``fail``, ``failed``, ``bad``, ``abnormal``, ``anomaly`` mean a defect of no
      particular type (label ``Status: Defect``, with a warning); any other name is a defect
      type, title-cased with words joined by "-" (``dent`` -> ``Dent``, ``broken_large`` ->
      ``Broken-Large``). Split folders (train, test, val, validation) and containers (Data,
      Images) are layout, never classes: the class is the first folder after them, so MVTec AD
      (``train/good``, ``test/<defect>``), anomalib's Folder layout (``good``, ``<defect>``,
      ``normal_test``) and VisA's ``<object>/Data/Images/Normal|Anomaly`` read as what they
      are (``dataset_rules.path_kind``). Masks (in ``ground_truth``/``mask``/``masks`` folders or
      named ``*_mask.*``), files that are not images (.txt, .json, ...), hidden and system files
      and files directly under the prefix are skipped, with counts printed.
    * A CSV (``.csv``) or JSONL (``.jsonl``) manifest with an image column (the first of
      ``gcs_uri``, ``image_uri``, ``uri``, ``image``, ``path``; in a CSV also ``file``,
      ``filename`` and the like; a value that is not ``gs://`` is a path relative to the
      manifest's folder, or to the VisA root for VisA's ``split_csv/*.csv``) and either a
      ``class`` column or a ``label`` column holding a class word (read as folder names are:
      VisA's normal/anomaly too), a ``label`` column with the full answer text (a row with an
      empty label falls back to the columns below), or ``status`` (Pass/OK/Good/Normal or
      Defect/NG/Fail/Bad) + ``defect_type`` columns. A CSV header without such columns is one
      problem naming the column names that would work.
    * A Gemini supervised-tuning JSONL (``contents`` lines) or the older chat format
      (``messages`` with role/content, "assistant" accepted for "model"): the image is the one
      ``fileData`` part (or ``gs://`` URI, or image_url part) of the user turns, the label is
      the final model turn's text. Prompts and system instructions in the file are dropped:
      the pipeline's ``prompt`` and ``system_instruction`` parameters apply.

    Labels built from a class: ``pass_label`` for Pass; for a defect, ``label_template`` when
    set, else the source notebook's answer for Scratch, Crack and Discoloration and
    ``Status: Defect - <Type> detected on product surface.`` for other types. For a given
    label, status is Pass when the label is ``pass_label`` or "Status: Pass", and the defect
    type is the word after "Defect -" ("Defect" when the label names none).

    Checks (one pass: every check runs, the image checks until ``problem_bound()`` problems
    are known, then the task fails listing them, naming the CSV row (the header is row 1),
    JSONL line or image URI; no manifest is written): the image exists,
    is non-empty, at most 20 MB, named .png/.jpg/.jpeg/.webp/.heic/.heif (what Gemini
    accepts), and decodes with Pillow as that format (HEIC/HEIF are checked by extension,
    size and ISO-BMFF header only: Pillow cannot decode them); every class has at least two
    distinct images (fewer cannot be split); no image content (sha256) is labelled with two
    classes; the set has Pass and at least one defect class (``class_set_problem``, naming the
    layout it saw and the fix). Warnings are printed for class imbalance (largest/smallest class above
    ``imbalance_warning_ratio``), duplicate images and labels the evaluation cannot type.
    Images are not resized or re-encoded.

    Args:
        project: Google Cloud project used for the Cloud Storage client.
        dataset_uri: ``gs://`` URI of the folder tree, CSV or JSONL described above; empty
            when the pipeline synthesizes images, and then this step writes an empty
            manifest (header only) and stops.
        manifest: output CSV with image_name, gcs_uri, status, defect_type, label, sha256.
        label_template: answer text for defect classes with a ``{defect_type}`` placeholder,
            e.g. "Status: Defect - {defect_type} found."; empty for the default labels.
        pass_label: answer text for good products (and the label recognised as Pass).
        imbalance_warning_ratio: warn when the largest class has more than this many times
            the images of the smallest.
        download_workers: parallel image downloads (bounded to be kind to the API).
    """
    from google.cloud import storage

    if not (dataset_uri or "").strip():  # the pipeline synthesizes the images instead
        write_empty_manifest(manifest.path, "dataset_uri is empty: images are synthesized")
        return
    dataset_uri = check_dataset_uri(dataset_uri)
    for warning in label_parameter_warnings(pass_label, label_template):
        print(warning, flush=True)
    client = storage.Client(project=project)
    source = dataset_source(dataset_uri, pass_label, label_template)
    layout = dataset_layout(source)

    # One pass: every check runs (the images until problem_bound() problems are known) before
    # the import stops, so that one attempt lists everything there is to fix.
    records, read_problems, seen, prompts_dropped = read_dataset(client, source, layout)
    if not records and not read_problems:
        raise ValueError(f"{dataset_uri} lists no images")
    records, repeated_rows = drop_repeated_rows(records)
    problems = list(read_problems)
    unchecked = check_images(client, records, download_workers, problem_bound(), problems)
    conflicts, duplicate_images = content_conflicts(records)
    class_problems = [p for p in [class_set_problem(records, seen)] if p] if records else []
    class_problems += small_class_problems(records)
    if read_problems:  # the rows and images that could not be read are in no class yet
        class_problems = [
            f"{p} (not counting the rows or images left out by the problems below)" for p in class_problems
        ]
    problems = class_problems + problems + conflicts  # the class set first: it may be the one fix needed
    if unchecked:  # first, as it qualifies the whole list (which shows its first 25)
        problems.insert(0, f"stopped after {problem_bound()} problems: {unchecked} image(s) were not checked yet")
    if problems:
        raise ValueError(failure_message(problems, "found", dataset_uri))
    notes = {"duplicate_rows": repeated_rows, "duplicate_images": duplicate_images, "prompt_dropped": prompts_dropped}
    for line in import_report(records, layout, dataset_uri, imbalance_warning_ratio, notes):
        print(line, flush=True)

    # ---- the manifest, written only now that everything passed
    write_manifest(manifest.path, [manifest_row(record) for record in records])
    manifest.metadata.update(manifest_metadata(records, layout, dataset_uri))
