"""Component 1 (bring your own images): import a labelled image set as the image manifest.

The alternative to ``synthesize_images`` when the pipeline parameter ``dataset_uri`` is set.
It writes the same manifest (image_name, gcs_uri, status, defect_type, label, sha256), so the
split, JSONL, tuning, evaluation and summary steps run unchanged.
"""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.helpers import defect_type_of, is_pass_answer, notebook_labels, parse_gcs_uri
from components.packages import BASE_IMAGE, IMAGE_PACKAGES


@dsl.component(base_image=BASE_IMAGE, packages_to_install=IMAGE_PACKAGES, install_kfp_package=False,
               additional_funcs=[notebook_labels, parse_gcs_uri, is_pass_answer, defect_type_of])
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
      segment has no extension). The folder name is the class: ``pass``, ``ok``, ``good`` and
      ``normal`` (any case) mean a good product; ``defect``, ``defective``, ``ng``, ``nok``,
      ``fail``, ``bad`` mean a defect of no particular type (label ``Status: Defect``); any
      other name is a defect type, title-cased with words joined by "-" (``dent`` -> ``Dent``,
      ``surface_dent`` -> ``Surface-Dent``). Files directly under the prefix and hidden files
      are skipped.
    * A CSV (``.csv``) or JSONL (``.jsonl``) manifest with an image column (the first of
      ``gcs_uri``, ``image_uri``, ``uri``, ``image``, ``path``; a value that is not ``gs://``
      is a path relative to the manifest's folder) and either a ``label`` column (the full
      answer text; a row with an empty label falls back to the columns below) or ``status``
      (Pass/OK/Good/Normal or Defect/NG/Fail/Bad) + ``defect_type`` columns.
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

    Checks (every problem is collected, then the task fails listing them, naming the CSV row
    (the header is row 1), JSONL line or image URI; no manifest is written): the image exists,
    is non-empty, at most 20 MB, named .png/.jpg/.jpeg/.webp/.heic/.heif (what Gemini
    accepts), and decodes with Pillow as that format (HEIC/HEIF are checked by extension,
    size and ISO-BMFF header only: Pillow cannot decode them); every class has at least two
    distinct images (fewer cannot be split); no image content (sha256) is labelled with two
    classes. Warnings are printed for class imbalance (largest/smallest class above
    ``imbalance_warning_ratio``), duplicate images and labels the evaluation cannot type.
    Images are not resized or re-encoded.

    Args:
        project: Google Cloud project used for the Cloud Storage client.
        dataset_uri: ``gs://`` URI of the folder tree, CSV or JSONL described above.
        manifest: output CSV with image_name, gcs_uri, status, defect_type, label, sha256.
        label_template: answer text for defect classes with a ``{defect_type}`` placeholder,
            e.g. "Status: Defect - {defect_type} found."; empty for the default labels.
        pass_label: answer text for good products (and the label recognised as Pass).
        imbalance_warning_ratio: warn when the largest class has more than this many times
            the images of the smallest.
        download_workers: parallel image downloads (bounded to be kind to the API).
    """
    import csv
    import hashlib
    import io
    import json
    import posixpath
    import re
    import string
    from collections import Counter, defaultdict
    from concurrent.futures import ThreadPoolExecutor

    from google.api_core import exceptions as gcs_errors
    from google.cloud import storage
    from PIL import Image

    max_image_bytes = 20 * 1024 * 1024
    pillow_formats = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "heic": None, "heif": None}
    pass_words = {"pass", "passed", "ok", "good", "normal"}
    defect_words = {"defect", "defective", "ng", "nok", "fail", "failed", "bad"}
    none_words = {"", "none", "null", "nan", "n/a", "na", "-"}
    uri_columns = ("gcs_uri", "image_uri", "uri", "image", "path")
    untyped_defect_label = "Status: Defect"

    # ---- parameters
    dataset_uri = (dataset_uri or "").strip()
    if not dataset_uri.startswith("gs://"):
        raise ValueError(f"dataset_uri must be a gs:// URI of a folder, .csv or .jsonl, got {dataset_uri!r}")
    if not pass_label.strip():
        raise ValueError("pass_label is empty: good products need an answer text")
    if label_template:
        fields = {name for _, name, _, _ in string.Formatter().parse(label_template) if name is not None}
        if fields - {"defect_type"}:
            raise ValueError(f"label_template {label_template!r} uses the placeholder(s) "
                             f"{sorted(fields - {'defect_type'})}; the only one allowed is {{defect_type}}")
        try:
            label_template.format(defect_type="Dent")
        except (ValueError, IndexError, KeyError) as error:
            raise ValueError(f"label_template {label_template!r} is not a valid template: {error}") from None
        if "defect_type" not in fields:
            print(f"warning: label_template {label_template!r} has no {{defect_type}}: every defect class gets "
                  "the same answer, so the model cannot learn to name the type", flush=True)
    if not is_pass_answer(pass_label):
        print(f"warning: pass_label {pass_label!r} is not 'Status: Pass'; the evaluation scores an answer as "
              "Pass only when it says 'Status: Pass'", flush=True)

    client = storage.Client(project=project)
    bucket_name, _, object_path = dataset_uri[len("gs://"):].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", bucket_name):
        raise ValueError(f"dataset_uri {dataset_uri!r} does not name a valid bucket")
    bucket = client.bucket(bucket_name)
    notebook = {kind.lower(): (kind, text) for kind, text in notebook_labels().items() if kind}
    problems = []  # "where: reason" lines, reported together at the end of each phase
    notes = Counter()

    # ---- classes and labels
    def type_name(raw):
        """'surface_dent' -> 'Surface-Dent'; the notebook's types keep their spelling."""
        words = [w for w in re.split(r"[\s_\-]+", raw.strip()) if w]
        name = "-".join(w[:1].upper() + w[1:].lower() for w in words)
        return notebook.get(name.lower(), (name, None))[0]

    def class_of_word(raw):
        """(status, defect_type) for a class name such as a folder name; None if unusable."""
        word = (raw or "").strip()
        if word.lower() in pass_words:
            return "Pass", "None"
        if word.lower() in defect_words:
            return "Defect", "Defect"
        name = type_name(word)
        if not name or not re.match(r"[A-Za-z]", name):
            return None
        return "Defect", name

    def label_of(status, defect_type):
        if status == "Pass":
            return pass_label.strip()
        if defect_type == "Defect":
            return untyped_defect_label
        if label_template:
            return label_template.format(defect_type=defect_type).strip()
        return notebook.get(defect_type.lower(), (None, f"Status: Defect - {defect_type} detected on product surface."))[1]

    def class_of_label(label):
        if is_pass_answer(label) or label.strip().casefold() == pass_label.strip().casefold():
            return "Pass", "None"
        return "Defect", defect_type_of(label) or "Defect"

    # ---- image references
    base_dir = posixpath.dirname(object_path)

    def resolve(value, where):
        """A gs:// URI for an image reference; relative paths resolve against the manifest."""
        value = (value or "").strip() if isinstance(value, str) else ""
        if not value:
            problems.append(f"{where}: no image URI")
            return None
        if value.startswith("gs://"):
            try:
                parse_gcs_uri(value)
            except ValueError:
                problems.append(f"{where}: {value!r} is not a gs://bucket/object URI")
                return None
            return value
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
            problems.append(f"{where}: image {value!r}: only gs:// URIs (or paths relative to the manifest) "
                            "are supported; copy the image to Cloud Storage")
            return None
        if value.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:[\\/]", value):
            problems.append(f"{where}: image {value!r} is a local path; upload the dataset first "
                            "(pipeline.datasets.upload_local_dataset or `python -m pipeline run --dataset PATH`)")
            return None
        joined = posixpath.normpath(posixpath.join(base_dir, value.replace("\\", "/")))
        if joined == ".." or joined.startswith("../"):
            problems.append(f"{where}: image {value!r} points outside the bucket")
            return None
        return f"gs://{bucket_name}/{joined}"

    def record(where, uri, status, defect_type, label, size=None):
        return {"where": where, "gcs_uri": uri, "status": status, "defect_type": defect_type,
                "label": label, "size": size}

    # ---- readers, one per layout
    def read_text():
        blob = bucket.get_blob(object_path)
        if blob is None:
            raise FileNotFoundError(f"dataset_uri {dataset_uri} does not exist")
        try:
            return blob.download_as_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValueError(f"{dataset_uri} is not UTF-8 text: {error}") from None

    def from_columns(row, where):
        """A record from a manifest row (CSV row or flat JSONL object); None on a problem."""
        row = {str(k).strip().lower(): ("" if v is None else str(v).strip()) for k, v in row.items() if k is not None}
        column = next((c for c in uri_columns if c in row), None)
        if column is None:
            problems.append(f"{where}: no image column; expected one of {', '.join(uri_columns)}")
            return None
        uri = resolve(row[column], where)
        label, status_raw, type_raw = row.get("label", ""), row.get("status", ""), row.get("defect_type", "")
        status_word, type_word = status_raw.lower(), type_raw
        if status_word or type_word:  # the class comes from the status / defect_type columns
            if status_word in pass_words or (not status_word and type_word.lower() in none_words | pass_words):
                if type_word.lower() not in none_words | pass_words:
                    problems.append(f"{where}: status {status_raw!r} but defect_type {type_raw!r}; "
                                    "a good product has no defect type")
                    return None
                status, defect_type = "Pass", "None"
            elif status_word in defect_words or not status_word:
                found = ("Defect", "Defect") if type_word.lower() in none_words | defect_words \
                    else class_of_word(type_word)
                if found is None:
                    problems.append(f"{where}: defect_type {type_raw!r} must start with a letter")
                    return None
                status, defect_type = found
            else:
                problems.append(f"{where}: status {status_raw!r} is neither Pass nor Defect "
                                "(Pass/OK/Good/Normal or Defect/NG/Fail/Bad)")
                return None
            if label:
                said, said_type = class_of_label(label)
                if said != status:
                    problems.append(f"{where}: the label {label!r} says {said} but the status column says {status}")
                    return None
                if said == "Defect" and defect_type == "Defect":
                    defect_type = said_type  # the label names the type the columns left out
                elif said == "Defect" and said_type != "Defect" and said_type.lower() != defect_type.lower():
                    problems.append(f"{where}: the label {label!r} names {said_type!r} but the defect_type "
                                    f"column says {type_raw!r}")
                    return None
            else:
                label = label_of(status, defect_type)
        elif label:
            status, defect_type = class_of_label(label)
        else:
            problems.append(f"{where}: no label; give a label column or status + defect_type columns")
            return None
        return record(where, uri, status, defect_type, label) if uri else None

    def text_of(content):
        if isinstance(content, str):
            return content
        parts = content if isinstance(content, list) else [content]
        return " ".join(p if isinstance(p, str) else (p.get("text") or "") for p in parts
                        if isinstance(p, (str, dict))).strip()

    def images_of(content, where):
        """Image references in a turn's parts / content (fileData, image_url, gs:// in text)."""
        found = []
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            if isinstance(part, str):
                found += [m.rstrip(".,;:!?)]}'\"") for m in re.findall(r"gs://\S+", part)]
                continue
            if not isinstance(part, dict):
                continue
            if part.get("inlineData") or part.get("inline_data"):
                problems.append(f"{where}: inline image data cannot be imported; use fileData with a gs:// URI")
            file = part.get("fileData") or part.get("file_data")
            image_url = part.get("image_url") or part.get("imageUrl")
            if isinstance(file, dict):
                found.append(file.get("fileUri") or file.get("file_uri") or "")
            elif image_url:
                found.append(image_url.get("url", "") if isinstance(image_url, dict) else str(image_url))
            elif isinstance(part.get("text"), str):
                found += images_of(part["text"], where)
            else:
                found += [part[k] for k in ("fileUri", "file_uri", "uri", "image") if isinstance(part.get(k), str)]
        return found

    def from_conversation(turns, where, kind):
        """A record from a Gemini ``contents`` list or a chat ``messages`` list."""
        if not isinstance(turns, list) or not turns:
            problems.append(f"{where}: {kind} is empty")
            return None
        images, answer = [], None
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict):
                problems.append(f"{where}: {kind}[{i}] is not an object")
                return None
            role = str(turn.get("role") or "").lower()
            content = turn.get("parts") if "parts" in turn else turn.get("content")
            if role == "user":
                images += images_of(content, where)
            elif role in ("model", "assistant"):
                answer = text_of(content) if i == len(turns) - 1 else answer
        if str(turns[-1].get("role") or "").lower() not in ("model", "assistant") or not (answer or "").strip():
            problems.append(f"{where}: the last turn must be the model's answer with text")
            return None
        if len(images) != 1:
            problems.append(f"{where}: {len(images)} images in the user turns; an imported example needs "
                            "exactly one image")
            return None
        status, defect_type = class_of_label(answer)
        uri = resolve(images[0], where)
        return record(where, uri, status, defect_type, answer.strip()) if uri else None

    def read_csv():
        name = posixpath.basename(object_path)
        reader = csv.DictReader(io.StringIO(read_text()))
        if not reader.fieldnames:
            raise ValueError(f"{dataset_uri} is empty: expected a header row")
        out = []
        for number, row in enumerate(reader, start=2):  # row 1 is the header
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            out.append(from_columns(row, f"{name} row {number}"))
        return out

    def read_jsonl():
        name = posixpath.basename(object_path)
        out = []
        for number, line in enumerate(read_text().splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{name} line {number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(f"{where}: not valid JSON ({error.msg})")
                continue
            if not isinstance(obj, dict):
                problems.append(f"{where}: expected a JSON object")
            elif "contents" in obj:
                out.append(from_conversation(obj["contents"], where, "contents"))
                notes["prompt_dropped"] += 1
            elif "messages" in obj:
                out.append(from_conversation(obj["messages"], where, "messages"))
                notes["prompt_dropped"] += 1
            else:
                out.append(from_columns(obj, where))
        return out

    def read_folder():
        prefix = object_path.rstrip("/") + "/" if object_path.strip("/") else ""
        out, skipped = [], []
        for blob in client.list_blobs(bucket_name, prefix=prefix):
            relative = blob.name[len(prefix):]
            parts = relative.split("/")
            if not relative or relative.endswith("/") or any(p.startswith(".") for p in parts) \
                    or parts[-1] in ("Thumbs.db", "desktop.ini"):
                continue
            if len(parts) == 1:
                skipped.append(relative)
                continue
            uri = f"gs://{bucket_name}/{blob.name}"
            found = class_of_word(parts[0])
            if found is None:
                problems.append(f"image {uri}: class folder {parts[0]!r} must start with a letter")
                continue
            out.append(record("", uri, *found, label_of(*found), size=blob.size))
        if skipped:
            print(f"note: skipped {len(skipped)} file(s) directly under {dataset_uri} (not in a class folder): "
                  f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}", flush=True)
        if not out and not problems:
            raise ValueError(f"no images found under gs://{bucket_name}/{prefix}; expected "
                             f"gs://{bucket_name}/{prefix}<class>/<image>, e.g. pass/img1.png and dent/img2.png")
        return out

    def fail(stage):
        shown = problems[:25]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise ValueError(f"import_dataset: {len(problems)} problem(s) {stage} in {dataset_uri}; no manifest was "
                         "written:\n  " + "\n  ".join(shown) + more)

    extension = posixpath.splitext(object_path.rstrip("/"))[1].lower()
    if dataset_uri.endswith("/") or not extension:
        layout, records = "folder", read_folder()
    elif extension == ".csv":
        layout, records = "csv", read_csv()
    elif extension == ".jsonl":
        layout, records = "jsonl", read_jsonl()
    else:
        raise ValueError(f"dataset_uri {dataset_uri} ends in {extension!r}: give a .csv or .jsonl manifest "
                         "or a folder (gs://bucket/prefix/ holding <class>/<image>)")
    records = [r for r in records if r]
    if problems:
        fail("reading the dataset")
    if not records:
        raise ValueError(f"{dataset_uri} lists no images")

    # The same image listed twice with the same label adds nothing: keep the first.
    unique, seen = [], set()
    for r in records:
        if (r["gcs_uri"], r["label"]) in seen:
            notes["duplicate_rows"] += 1
            continue
        seen.add((r["gcs_uri"], r["label"]))
        unique.append(r)
    records = unique

    # ---- image checks, in parallel
    def ref(r):
        return f"{r['where']}: image {r['gcs_uri']}" if r["where"] else f"image {r['gcs_uri']}"

    def check(r):
        """(sha256, None) or (None, problem) for one image; nothing is kept in memory."""
        uri = r["gcs_uri"]
        ext = posixpath.splitext(uri)[1].lower().lstrip(".")
        if ext not in pillow_formats:
            what = f"'.{ext}'" if ext else "no file extension"
            return None, (f"{ref(r)} has an unsupported format ({what}); Gemini accepts PNG, JPEG, WebP and "
                          "HEIC/HEIF (.png, .jpg, .jpeg, .webp, .heic, .heif)")
        name, path = parse_gcs_uri(uri)
        try:
            blob = client.bucket(name).blob(path) if r["size"] is not None else client.bucket(name).get_blob(path)
            if blob is None:
                return None, f"{ref(r)} does not exist"
            size = r["size"] if r["size"] is not None else blob.size
            if size is not None and size > max_image_bytes:
                return None, f"{ref(r)} is {size / 2**20:.1f} MB; Vertex AI accepts at most 20 MB per image"
            data = blob.download_as_bytes()
        except gcs_errors.NotFound:
            return None, f"{ref(r)} does not exist"
        except gcs_errors.GoogleAPICallError as error:
            return None, f"{ref(r)} cannot be read: {error}"
        if not data:
            return None, f"{ref(r)} is empty (0 bytes)"
        if len(data) > max_image_bytes:
            return None, f"{ref(r)} is {len(data) / 2**20:.1f} MB; Vertex AI accepts at most 20 MB per image"
        expected = pillow_formats[ext]
        if expected is None:  # HEIC/HEIF: Pillow cannot decode it; an ISO-BMFF file starts with a ftyp box
            if data[4:8] != b"ftyp":
                return None, f"{ref(r)} is not a HEIC/HEIF file (no ftyp header)"
        else:
            try:
                with Image.open(io.BytesIO(data)) as image:
                    actual = {"MPO": "JPEG"}.get(image.format, image.format)
                    if actual == "JPEG":
                        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                    image.load()
            except Exception as error:  # Pillow raises many types for broken files
                return None, f"{ref(r)} is unreadable: Pillow cannot decode it ({type(error).__name__}: {error})"
            if actual != expected:
                return None, (f"{ref(r)} is a {actual} file but named .{ext}; Gemini accepts PNG, JPEG, WebP "
                              "and HEIC/HEIF, and the file type must match the extension")
        return hashlib.sha256(data).hexdigest(), None

    total = len(records)
    step = max(1, total // 10)
    with ThreadPoolExecutor(max_workers=max(1, download_workers)) as pool:
        for done, (r, (digest, problem)) in enumerate(zip(records, pool.map(check, records)), start=1):
            r["sha256"] = digest
            if problem:
                problems.append(problem)
            if done % step == 0 or done == total:
                print(f"checked {done}/{total} images", flush=True)
    if problems:
        fail("checking the images")

    # ---- class checks: conflicting labels for one content, classes too small to split
    def class_key(r):
        return "Pass" if r["status"] == "Pass" else r["defect_type"]

    by_content = defaultdict(list)
    for r in records:
        by_content[r["sha256"]].append(r)
    for digest, group in by_content.items():
        first = group[0]
        for other in group[1:]:
            if class_key(other) != class_key(first):
                problems.append(f"{ref(first)} and {ref(other)} have the same content (sha256 {digest[:12]}...) "
                                f"but the classes {class_key(first)!r} and {class_key(other)!r}")
                break
        if len(group) > 1:
            notes["duplicate_images"] += len(group) - 1
    distinct = defaultdict(set)
    members = defaultdict(list)
    for r in records:
        distinct[class_key(r)].add(r["sha256"])
        members[class_key(r)].append(r)
    for name in sorted(distinct, key=str.lower):
        if len(distinct[name]) < 2:
            problems.append(f"class {name!r} has only {len(distinct[name])} distinct image "
                            f"({'; '.join(ref(r) for r in members[name][:3])}); each class needs at least 2 "
                            "to be split: add images or remove the class")
    if problems:
        fail("checking the classes")

    # ---- warnings and notes
    counts = Counter(class_key(r) for r in records)
    summary = ", ".join(f"{name} {count}" for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    print(f"imported {total} images in {len(counts)} classes from {dataset_uri} ({layout}): {summary}", flush=True)
    if len(counts) == 1:
        print(f"warning: only one class ({next(iter(counts))}); the inspector cannot learn to tell classes apart",
              flush=True)
    largest, smallest = max(counts.values()), min(counts.values())
    if smallest and largest / smallest > imbalance_warning_ratio:
        print(f"warning: the classes are imbalanced ({summary}; largest/smallest = {largest / smallest:.1f} > "
              f"{imbalance_warning_ratio:g}); consider the oversample_rare_classes=True pipeline parameter "
              "or more images of the rare classes", flush=True)
    small = sorted(name for name, count in counts.items() if count < 10)
    if small:
        print(f"note: {', '.join(small)} ha{'s' if len(small) == 1 else 've'} fewer than 10 images; with an 80/10/10 "
              "split such a class may get no validation or test example", flush=True)
    if notes["duplicate_rows"]:
        print(f"note: dropped {notes['duplicate_rows']} repeated row(s) (same image, same label)", flush=True)
    if notes["duplicate_images"]:
        print(f"note: {notes['duplicate_images']} image(s) repeat the content of another image; the split keeps "
              "copies together", flush=True)
    untyped = sum(1 for r in records if r["status"] == "Defect" and defect_type_of(r["label"]) is None)
    if untyped:
        print(f"note: {untyped} defect label(s) name no type as 'Defect - <Type>'; the evaluation scores their "
              "status only", flush=True)
    heic = sum(1 for r in records if r["gcs_uri"].lower().endswith((".heic", ".heif")))
    if heic:
        print(f"note: {heic} HEIC/HEIF image(s) were checked by extension, size and header only "
              "(Pillow cannot decode them)", flush=True)
    if notes["prompt_dropped"]:
        print("note: prompts and system instructions in the file are replaced by the pipeline's prompt and "
              "system_instruction parameters", flush=True)

    # ---- the manifest, written only now that everything passed
    fieldnames = ["image_name", "gcs_uri", "status", "defect_type", "label", "sha256"]
    with open(manifest.path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        for r in records:
            writer.writerow({"image_name": posixpath.basename(r["gcs_uri"]), **{k: r[k] for k in fieldnames[1:]}})
    manifest.metadata.update({
        "num_images": total,
        "num_defects": sum(1 for r in records if r["status"] == "Defect"),
        "class_counts": dict(counts),
        "layout": layout,
        "dataset_uri": dataset_uri,
    })
