"""Pure rules of the data components: classes and labels, manifest rows, image, class and
tuning-example checks, and the text of their problems, warnings and notes.

Nothing here touches Cloud Storage or prints: the components do the I/O and call these.
KFP ships only a function's own source plus the functions it reaches (components/shipping.py
derives them), so each function imports what it needs inside and shared facts are functions.

Records are dicts: ``image_record`` names their keys. A problem is one line
"<where>: <reason>", where "where" names the CSV row (the header is row 1), the JSONL line or
the image URI. The checks of a whole tuning JSONL line (``jsonl_line_problems``, used by
``python -m pipeline validate``) give every problem of a line as a dict with its line, kind,
message and fix (``jsonl_problem``).
"""

from components.clients import parse_gcs_uri
from components.labels import defect_type_of, is_pass_answer, notebook_labels
from components.manifests import image_mime_types, manifest_columns
from platform_facts.gemini import (
    base_model_id,
    gemini_models,
    image_token_count,
    media_resolution_level,
    media_resolution_problem,
    text_token_count,
    tuning_limits,
)

# ---- shared facts


def max_image_bytes():
    """Vertex AI's limit for one image of a tuning example (platform_facts.gemini.tuning_limits)."""
    return tuning_limits()["max_image_bytes"]


def max_images_per_example():
    """Vertex AI's limit of images in one tuning example (platform_facts.gemini.tuning_limits)."""
    return tuning_limits()["max_images_per_example"]


def pass_words():
    """Class folder names and status values (lower case) that mean a good product."""
    return {"pass", "passed", "ok", "good", "normal"}


def defect_words():
    """Class folder names and status values (lower case) that mean a defect of no given type
    (anomalib's and VisA's "abnormal"/"anomaly" among them: anomaly sets name no type)."""
    return {"defect", "defective", "ng", "nok", "fail", "failed", "bad", "abnormal", "anomaly", "anomalous"}


def none_words():
    """defect_type values (lower case) that mean "no type given"."""
    return {"", "none", "null", "nan", "n/a", "na", "-"}


def image_uri_columns():
    """The manifest columns that may hold the image, in order of preference."""
    return ("gcs_uri", "image_uri", "uri", "image", "path")


def image_column_aliases():
    """Other names a hand-made CSV gives its image column (``file,class`` is the commonest);
    a CSV header with one of these and none of image_uri_columns() reads it as the image."""
    return ("file", "filename", "file_name", "filepath", "file_path", "image_path", "img")


def class_columns():
    """Columns that hold a class word (good, scratch, ...) rather than a full answer."""
    return ("class", "class_name", "classname")


def split_words():
    """Folder names (lower case) of a dataset's splits: layout, never classes. The pipeline
    splits the images itself, so they are not kept."""
    return {"train", "training", "test", "testing", "val", "valid", "validation"}


def container_words():
    """Folder names (lower case) that only hold other folders or images (VisA's Data/Images):
    layout, never classes."""
    return {"data", "images", "image", "imgs", "img"}


def mask_words():
    """Folder names (lower case) of segmentation masks (MVTec's ground_truth, anomalib's mask
    directory, VisA's Masks): masks are never images to train on."""
    return {"ground_truth", "groundtruth", "ground-truth", "gt", "mask", "masks"}


def system_file_names():
    """File names (lower case) that operating systems leave in folders."""
    return {"thumbs.db", "desktop.ini", ".ds_store"}


def image_file_extensions():
    """Extensions (lower case, no dot) of image files: Gemini's formats and other raster formats,
    which are imported (and refused, naming the format). Any other file is a sidecar, skipped."""
    return set(image_mime_types()) | {"gif", "bmp", "tif", "tiff", "jfif", "jpe", "avif", "jp2", "ppm", "pgm", "ico"}


def problem_bound():
    """The import stops checking images once it has found this many problems: the report then
    lists them all at once, and a set where every image is wrong is not downloaded whole."""
    return 50


def untyped_defect_label():
    """The label of a defect class that names no type."""
    return "Status: Defect"


# ---- parameters and the dataset's location


def check_dataset_uri(dataset_uri):
    """The stripped ``dataset_uri``; ValueError unless it is a gs:// URI."""
    dataset_uri = (dataset_uri or "").strip()
    if not dataset_uri.startswith("gs://"):
        raise ValueError(f"dataset_uri must be a gs:// URI of a folder, .csv or .jsonl, got {dataset_uri!r}")
    return dataset_uri


def label_parameter_warnings(pass_label, label_template):
    """Warning lines for pass_label and label_template; ValueError when they cannot be used."""
    import string

    if not pass_label.strip():
        raise ValueError("pass_label is empty: good products need an answer text")
    warnings = []
    if label_template:
        fields = {name for _, name, _, _ in string.Formatter().parse(label_template) if name is not None}
        if fields - {"defect_type"}:
            raise ValueError(
                f"label_template {label_template!r} uses the placeholder(s) "
                f"{sorted(fields - {'defect_type'})}; the only one allowed is {{defect_type}}"
            )
        try:
            label_template.format(defect_type="Dent")
        except (ValueError, IndexError, KeyError) as error:
            raise ValueError(f"label_template {label_template!r} is not a valid template: {error}") from None
        if "defect_type" not in fields:
            warnings.append(
                f"warning: label_template {label_template!r} has no {{defect_type}}: every defect class "
                "gets the same answer, so the model cannot learn to name the type"
            )
    if not is_pass_answer(pass_label):
        warnings.append(
            f"warning: pass_label {pass_label!r} is not 'Status: Pass'; the evaluation scores an answer "
            "as Pass only when it says 'Status: Pass'"
        )
    return warnings


def dataset_source(dataset_uri, pass_label="Status: Pass", label_template=""):
    """What the readers need to know about the dataset: its bucket, object path, folder, file
    name and the label parameters. ValueError when the URI names no valid bucket."""
    import posixpath
    import re

    bucket_name, _, object_path = dataset_uri[len("gs://") :].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", bucket_name):
        raise ValueError(f"dataset_uri {dataset_uri!r} does not name a valid bucket")
    return {
        "dataset_uri": dataset_uri,
        "bucket": bucket_name,
        "object_path": object_path,
        "base_dir": posixpath.dirname(object_path),
        "file_name": posixpath.basename(object_path),
        "pass_label": pass_label,
        "label_template": label_template,
    }


def dataset_layout(source):
    """ "folder", "csv" or "jsonl" from the URI's form; ValueError for any other extension."""
    import posixpath

    extension = posixpath.splitext(source["object_path"].rstrip("/"))[1].lower()
    if source["dataset_uri"].endswith("/") or not extension:
        return "folder"
    if extension in (".csv", ".jsonl"):
        return extension[1:]
    raise ValueError(
        f"dataset_uri {source['dataset_uri']} ends in {extension!r}: give a .csv or .jsonl manifest "
        "or a folder (gs://bucket/prefix/ holding <class>/<image>)"
    )


def decode_manifest_text(data, dataset_uri):
    """The text of a CSV/JSONL manifest (a UTF-8 byte order mark is dropped)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{dataset_uri} is not UTF-8 text: {error}") from None


# ---- classes and labels


def type_name(raw):
    """A defect type from a class name: 'surface_dent' -> 'Surface-Dent'; the notebook's types
    keep their spelling ('CRACK' -> 'Crack')."""
    import re

    notebook = {kind.lower(): kind for kind in notebook_labels() if kind}
    words = [w for w in re.split(r"[\s_\-]+", raw.strip()) if w]
    name = "-".join(w[:1].upper() + w[1:].lower() for w in words)
    return notebook.get(name.lower(), name)


def class_of_word(raw):
    """(status, defect_type) for a class name such as a folder name; None if unusable."""
    import re

    word = (raw or "").strip()
    if word.lower() in pass_words():
        return "Pass", "None"
    if word.lower() in defect_words():
        return "Defect", "Defect"
    name = type_name(word)
    if not name or not re.match(r"[A-Za-z]", name):
        return None
    return "Defect", name


def label_of(status, defect_type, pass_label="Status: Pass", label_template=""):
    """The answer text for a class: pass_label, the untyped defect label, label_template, or the
    notebook's answer (a sentence of the same form for types the notebook does not know)."""
    if status == "Pass":
        return pass_label.strip()
    if defect_type == "Defect":
        return untyped_defect_label()
    if label_template:
        return label_template.format(defect_type=defect_type).strip()
    notebook = {kind.lower(): text for kind, text in notebook_labels().items() if kind}
    return notebook.get(defect_type.lower(), f"Status: Defect - {defect_type} detected on product surface.")


def class_of_label(label, pass_label="Status: Pass"):
    """(status, defect_type) that a label says: Pass for "Status: Pass" or pass_label, else the
    type after "Defect -" ("Defect" when the label names none)."""
    if is_pass_answer(label) or label.strip().casefold() == pass_label.strip().casefold():
        return "Pass", "None"
    return "Defect", defect_type_of(label) or "Defect"


def class_key(record):
    """The class a record counts in: "Pass" or its defect type."""
    return "Pass" if record["status"] == "Pass" else record["defect_type"]


# ---- manifest rows: CSV rows, flat JSONL objects, Gemini contents and chat messages


def image_record(where, uri, status, defect_type, label, size=None):
    """One image of the dataset; ``where`` names its row or line ("" for a folder tree), ``size``
    is known when a listing gave it."""
    return {"where": where, "gcs_uri": uri, "status": status, "defect_type": defect_type, "label": label, "size": size}


def resolve_image_ref(value, bucket_name, base_dir):
    """(gs:// URI, None) for an image reference, or (None, reason). A value that is not a URI is
    a path relative to the manifest's folder ``base_dir`` in ``bucket_name``."""
    import posixpath
    import re

    value = (value or "").strip() if isinstance(value, str) else ""
    if not value:
        return None, "no image URI"
    if value.startswith("gs://"):
        try:
            parse_gcs_uri(value)
        except ValueError:
            return None, f"{quoted(value, 200)} is not a gs://bucket/object URI"
        return value, None
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        return None, (
            f"image {quoted(value, 200)}: only gs:// URIs (or paths relative to the manifest) are supported; "
            "copy the image to Cloud Storage"
        )
    if value.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:[\\/]", value):
        return None, (
            f"image {quoted(value, 200)} is a local path; upload the dataset first "
            "(pipeline.uploads.upload_local_dataset or `python -m pipeline run --dataset PATH`)"
        )
    joined = posixpath.normpath(posixpath.join(base_dir, value.replace("\\", "/")))
    if joined == ".." or joined.startswith("../"):
        return None, f"image {quoted(value, 200)} points outside the bucket"
    return f"gs://{bucket_name}/{joined}", None


def class_from_status_columns(status_raw, type_raw):
    """((status, defect_type), None) from a row's status and defect_type values, or (None, reason)."""
    status_word, type_word = status_raw.lower(), type_raw
    no_type = none_words() | pass_words()
    if status_word in pass_words() or (not status_word and type_word.lower() in no_type):
        if type_word.lower() not in no_type:
            return None, (
                f"status {quoted(status_raw)} but defect_type {quoted(type_raw)}; a good product has no defect type"
            )
        return ("Pass", "None"), None
    if status_word in defect_words() or not status_word:
        found = ("Defect", "Defect") if type_word.lower() in none_words() | defect_words() else class_of_word(type_word)
        if found is None:
            return None, f"defect_type {quoted(type_raw)} must start with a letter"
        return found, None
    return None, f"status {quoted(status_raw)} is neither Pass nor Defect (Pass/OK/Good/Normal or Defect/NG/Fail/Bad)"


def reconcile_label(label, found, type_raw, pass_label="Status: Pass"):
    """(defect_type, None) when a row's label agrees with its status columns' class ``found``,
    else (None, reason). A typed label completes an untyped "Defect" row."""
    status, defect_type = found
    said, said_type = class_of_label(label, pass_label)
    if said != status:
        return None, f"the label {quoted(label, 200)} says {said} but the status column says {status}"
    if said == "Defect" and defect_type == "Defect":
        return said_type, None  # the label names the type the columns left out
    if said == "Defect" and said_type != "Defect" and said_type.lower() != defect_type.lower():
        return None, (
            f"the label {quoted(label, 200)} names {quoted(said_type)} but the defect_type column says "
            f"{quoted(type_raw)}"
        )
    return defect_type, None


def class_of_row(row, source):
    """((status, defect_type, label), None) for a normalised manifest row, or (None, reason).

    The status / defect_type columns decide when present (a label, if given, must agree);
    otherwise the label column does.
    """
    label, status_raw, type_raw = row.get("label", ""), row.get("status", ""), row.get("defect_type", "")
    word = next((row[c] for c in class_columns() if row.get(c)), "")
    if not (status_raw or type_raw) and (word or is_class_word(label, source["pass_label"])):
        return class_of_class_word(word or label, "" if label == word or not word else label, source)
    if status_raw or type_raw:
        found, reason = class_from_status_columns(status_raw, type_raw)
        if reason:
            return None, reason
        if not label:
            return (*found, label_of(*found, source["pass_label"], source["label_template"])), None
        defect_type, reason = reconcile_label(label, found, type_raw, source["pass_label"])
        return (None, reason) if reason else ((found[0], defect_type, label), None)
    if label:
        return (*class_of_label(label, source["pass_label"]), label), None
    return None, "no label; give a label column or status + defect_type columns"


def is_class_word(label, pass_label="Status: Pass"):
    """True when a label column holds a bare class word (good, scratch, broken_large, anomaly)
    rather than an answer: one token, no spaces or punctuation, not the pass_label itself."""
    import re

    text = (label or "").strip()
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", text)) and text != pass_label.strip()


def class_of_class_word(word, label, source):
    """((status, defect_type, label), None) for a class word (a class column or a bare label
    read as folder names are: good -> Pass, anomaly -> Defect, broken_large -> Broken-Large),
    or (None, reason); a full-answer ``label`` beside it must agree."""
    found = ("Pass", "None") if word.strip().lower() in none_words() else class_of_word(word)
    if found is None:
        return None, f"class {quoted(word)} must start with a letter"
    if not label:
        return (*found, label_of(*found, source["pass_label"], source["label_template"])), None
    defect_type, reason = reconcile_label(label, found, word, source["pass_label"])
    return (None, reason) if reason else ((found[0], defect_type, label), None)


def columns_record(row, where, source):
    """(record or None, problems) for a CSV row or a flat JSONL object."""
    row = {str(k).strip().lower(): ("" if v is None else str(v).strip()) for k, v in row.items() if k is not None}
    column = next((c for c in image_uri_columns() if c in row), None)
    if column is None:
        return None, [f"{where}: no image column; expected one of {', '.join(image_uri_columns())}"]
    uri, reason = resolve_image_ref(row[column], source["bucket"], source["base_dir"])
    problems = [f"{where}: {reason}"] if reason else []  # the class is still checked: report both
    found, reason = class_of_row(row, source)
    if reason:
        return None, problems + [f"{where}: {reason}"]
    return (image_record(where, uri, *found) if uri else None), problems


def turn_text(content):
    """The text of a turn's parts / content."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    return " ".join(
        p if isinstance(p, str) else (p.get("text") or "") for p in parts if isinstance(p, (str, dict))
    ).strip()


def turn_images(content):
    """(image references, reasons) in a turn's parts / content: fileData, image_url parts and
    gs:// URIs in text; inline image data is a reason (it cannot be imported)."""
    import re

    found, reasons = [], []
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, str):
            found += [m.rstrip(".,;:!?)]}'\"") for m in re.findall(r"gs://\S+", part)]
            continue
        if not isinstance(part, dict):
            continue
        if part.get("inlineData") or part.get("inline_data"):
            reasons.append("inline image data cannot be imported; use fileData with a gs:// URI")
        file = part.get("fileData") or part.get("file_data")
        image_url = part.get("image_url") or part.get("imageUrl")
        if isinstance(file, dict):
            found.append(file.get("fileUri") or file.get("file_uri") or "")
        elif image_url:
            found.append(image_url.get("url", "") if isinstance(image_url, dict) else str(image_url))
        elif isinstance(part.get("text"), str):
            found += turn_images(part["text"])[0]
        else:
            found += [part[k] for k in ("fileUri", "file_uri", "uri", "image") if isinstance(part.get(k), str)]
    return found, reasons


def conversation_record(turns, where, kind, source):
    """(record or None, problems) for a Gemini ``contents`` list or a chat ``messages`` list:
    one image in the user turns, the label from the final model (or assistant) turn."""
    if not isinstance(turns, list) or not turns:
        return None, [f"{where}: {kind} is empty"]
    images, answer, problems = [], None, []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return None, problems + [f"{where}: {kind}[{i}] is not an object"]
        role = str(turn.get("role") or "").lower()
        content = turn.get("parts") if "parts" in turn else turn.get("content")
        if role == "user":
            found, reasons = turn_images(content)
            images += found
            problems += [f"{where}: {reason}" for reason in reasons]
        elif role in ("model", "assistant"):
            answer = turn_text(content) if i == len(turns) - 1 else answer
    if str(turns[-1].get("role") or "").lower() not in ("model", "assistant") or not (answer or "").strip():
        return None, problems + [f"{where}: the last turn must be the model's answer with text"]
    if len(images) != 1:
        return None, problems + [
            f"{where}: {len(images)} images in the user turns; an imported example needs exactly one image"
        ]
    status, defect_type = class_of_label(answer, source["pass_label"])
    uri, reason = resolve_image_ref(images[0], source["bucket"], source["base_dir"])
    if reason:
        return None, problems + [f"{where}: {reason}"]
    return image_record(where, uri, status, defect_type, answer.strip()), problems


def csv_records(text, source):
    """(records, problems) of a CSV manifest's text; blank rows are skipped."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ValueError(f"{source['dataset_uri']} is empty: expected a header row")
    renames, problems = csv_columns(reader.fieldnames, source["file_name"])
    if problems:  # every row would repeat them
        return [], problems
    source = {**source, "base_dir": manifest_base_dir(reader.fieldnames, source["base_dir"])}
    records = []
    for number, row in enumerate(reader, start=2):  # row 1 is the header
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        row = {renames.get(k, k): v for k, v in row.items()}
        record, found = columns_record(row, f"{source['file_name']} row {number}", source)
        records += [record] if record else []
        problems += found
    return records, problems


def csv_columns(fieldnames, file_name):
    """({header name: name it is read as}, problems) of a CSV header: an image column (one of
    image_uri_columns(), or an alias such as ``file``) and a column that gives the class. The
    problems name the columns found and the names that would work."""
    lowered = {str(f).strip().lower(): f for f in fieldnames if f is not None}
    found = ", ".join(str(f) for f in fieldnames if f is not None) or "none"
    renames, problems = {}, []
    if not any(c in lowered for c in image_uri_columns()):
        alias = next((c for c in image_column_aliases() if c in lowered), None)
        if alias is None:
            problems.append(
                f"{file_name}: no image column (columns: {found}); name it one of "
                f"{', '.join(image_uri_columns() + image_column_aliases())}"
            )
        else:
            renames[lowered[alias]] = "image"
    if not any(c in lowered for c in ("label", "status", "defect_type", *class_columns())):
        problems.append(
            f"{file_name}: no class column (columns: {found}); give a class column (good, scratch, ...), "
            "a label column (a class word or the full answer, e.g. 'Status: Pass') or status + defect_type columns"
        )
    return renames, problems


def manifest_base_dir(fieldnames, base_dir):
    """The folder a manifest's relative image paths start from: its own, except for a VisA split
    CSV in ``split_csv/``, whose paths (candle/Data/Images/...) start from the VisA root above it."""
    import posixpath

    visa = manifest_layout(fieldnames, "")["kind"] == "visa_csv"
    return posixpath.dirname(base_dir) if visa and posixpath.basename(base_dir) == "split_csv" else base_dir


def jsonl_records(text, source):
    """(records, problems, prompts dropped) of a JSONL manifest's text: flat objects, Gemini
    ``contents`` lines or chat ``messages`` lines (whose prompts the pipeline replaces)."""
    import json

    records, problems, prompts_dropped = [], [], 0
    # JSONL lines end at "\n" only: str.splitlines would also split at U+2028 inside a string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{source['file_name']} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{where}: not valid JSON ({error.msg})")
            continue
        except RecursionError:
            problems.append(f"{where}: not valid JSON (nested too deeply)")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{where}: expected a JSON object")
            continue
        kind = next((k for k in ("contents", "messages") if k in obj), None)
        if kind:
            record, found = conversation_record(obj[kind], where, kind, source)
            prompts_dropped += 1
        else:
            record, found = columns_record(obj, where, source)
        records += [record] if record else []
        problems += found
    return records, problems, prompts_dropped


def folder_prefix(object_path):
    """The object-name prefix of a folder tree ("" for the whole bucket)."""
    return object_path.rstrip("/") + "/" if object_path.strip("/") else ""


def class_word_of_folder(folder):
    """The class word of a folder name: the name itself, less split words joined to it
    (anomalib's ``normal_test``, ``test_good``); None for a pure layout word (train, Data)."""
    import re

    if folder.lower() in split_words() | container_words():
        return None
    words = [w for w in re.split(r"[\s_\-]+", folder) if w]
    kept = [w for w in words if w.lower() not in split_words()]
    return "_".join(kept) if kept and len(kept) < len(words) else folder


def class_folder(folders):
    """The folder of a file's path that names its class, or None when only layout words do.

    The first folder after the last layout word (``test/scratch``, ``bottle/train/good``,
    ``candle/Data/Images/Normal``); without layout words, the top folder (``pass/batch1``).
    A class folder holding a split folder (``dent/test``) keeps its class.
    """
    words = [class_word_of_folder(f) for f in folders]
    last = max((i for i, w in enumerate(words) if w is None), default=-1)
    after = [w for w in words[last + 1 :] if w is not None]
    before = [w for w in words[: last + 1] if w is not None]
    return after[0] if after else (before[-1] if before else None)


def path_kind(relative):
    """(kind, detail) of a file in a folder tree, from its path relative to the tree:
    ("system", name) hidden or system files; ("loose", "") files directly in the tree;
    ("sidecar", extension) files with an extension that is not an image's (.txt, .json, ...;
    a file with none is checked as an image, and refused naming it); ("mask", "") masks,
    in a mask folder or named ``*_mask.*``; ("image", class folder or None)."""
    import posixpath

    parts = relative.split("/")
    folders, name = parts[:-1], parts[-1]
    if any(p.startswith(".") for p in parts) or name.lower() in system_file_names():
        return "system", name
    if not folders:
        return "loose", ""
    stem, extension = posixpath.splitext(name.lower())
    if extension and extension[1:] not in image_file_extensions():  # no extension: maybe an image, checked
        return "sidecar", extension
    if any(f.lower() in mask_words() for f in folders) or stem.endswith(("_mask", "-mask")):
        return "mask", ""
    return "image", class_folder(folders)


def folder_records(listing, source):
    """(records, problems, skipped names) of a folder tree from its (object name, size) listing.

    The class folder is path_kind's; masks, sidecar, hidden and system files are left out
    (folder_layout counts them); files directly under the prefix are skipped.
    """
    prefix = folder_prefix(source["object_path"])
    records, problems, skipped = [], [], []
    for name, size in listing:
        relative = name[len(prefix) :]
        if not relative or relative.endswith("/"):
            continue
        kind, folder = path_kind(relative)
        if kind == "loose":
            skipped.append(relative)
        if kind != "image":
            continue
        uri = f"gs://{source['bucket']}/{name}"
        if folder is None:
            layout = "/".join(relative.split("/")[:-1])
            problems.append(
                f"image {uri} has no class folder: {layout}/ holds splits, not classes; put images in class "
                f"folders inside it (e.g. {layout}/good/ and {layout}/scratch/)"
            )
            continue
        found = class_of_word(folder)
        if found is None:
            problems.append(f"image {uri}: class folder {quoted(folder)} must start with a letter")
            continue
        label = label_of(*found, source["pass_label"], source["label_template"])
        records.append(image_record("", uri, *found, label, size=size))
    return records, problems, skipped


def folder_layout(relatives):
    """What a folder tree is, from its files' paths relative to it: {"kind", "name", "masks",
    "sidecars" {extension: count}, "system", "splits" [split folders seen], "untyped" [folders
    of defects with no type]}. Kinds: mvtec, visa, anomalib or folders (class folders)."""
    from collections import Counter

    folders, sidecars, untyped = set(), Counter(), set()
    masks = system = 0
    for relative in relatives:
        kind, detail = path_kind(relative)
        folders.update(f.lower() for f in relative.split("/")[:-1])
        masks += kind == "mask"
        system += kind == "system"
        sidecars.update([detail] if kind == "sidecar" else [])
        if kind == "image" and detail and (class_of_word(detail) or ("",))[-1] == "Defect":
            untyped.add(detail)
    splits = sorted(folders & split_words())
    if splits and ("ground_truth" in folders or "good" in folders):
        kind, name = "mvtec", "MVTec AD (train/good, test/good, test/<defect>, ground_truth/<defect> masks)"
    elif "data" in folders and "images" in folders:
        kind, name = "visa", "VisA folders (<object>/Data/Images/Normal|Anomaly, Data/Masks)"
    elif folders & {"normal", "abnormal"} or folders & mask_words():
        kind, name = "anomalib", "anomalib Folder (normal, abnormal and mask directories)"
    else:
        kind, name = "folders", "class folders (<class>/<image>)"
    return {
        "kind": kind,
        "name": name,
        "masks": masks,
        "sidecars": dict(sidecars),
        "system": system,
        "splits": splits,
        "untyped": sorted(untyped),
    }


def layout_notes(layout, where):
    """The lines that tell the user how a dataset's layout was read: what was skipped, with
    counts, and what carries no defect type. ``where`` names the dataset (local path or URI)."""
    skipped = []
    if layout.get("masks"):
        skipped.append(f"{layout['masks']} mask(s) (masks are never trained on)")
    sidecars = layout.get("sidecars") or {}
    if sidecars:
        kinds = ", ".join(f"{ext} {n}" for ext, n in sorted(sidecars.items(), key=lambda kv: (-kv[1], kv[0])))
        skipped.append(f"{sum(sidecars.values())} file(s) that are not images ({kinds})")
    if layout.get("system"):
        skipped.append(f"{layout['system']} hidden or system file(s) (.DS_Store, Thumbs.db, ...)")
    plain = layout["kind"] in ("folders", "csv", "jsonl") and not skipped  # the usual cases need no word
    lines = (
        []
        if plain
        else [f"note: {where} read as {layout['name']}" + (f"; skipped {', '.join(skipped)}" if skipped else "")]
    )
    if layout.get("splits"):
        lines.append(
            f"note: the split folders ({', '.join(s + '/' for s in layout['splits'])}) are layout, not classes: "
            "their images are pooled and the pipeline splits them itself"
        )
    if layout["kind"] == "visa_csv":
        lines.append("note: the split and mask columns are not used: the pipeline splits the images itself")
        lines.append(
            "warning: VisA's split CSV names no defect type: its anomaly images form one class 'Defect' and the "
            "inspector answers 'Status: Defect' without a type"
        )
    if layout.get("untyped"):
        lines.append(
            f"warning: {', '.join(f + '/' for f in layout['untyped'])} name(s) no defect type: those images form "
            "one class 'Defect' and the inspector answers 'Status: Defect' without a type; to have it name the "
            "defect, put one folder per defect type next to the good one (scratch/, crack/)"
        )
    return lines


def layout_fix(kind, missing):
    """How to give a set of layout ``kind`` the class it misses ("pass" or "defect")."""
    fixes = {
        "mvtec": (
            "copy the category's train/good/ and test/good/ folders too",
            "copy the category's test/<defect>/ folders too (test/scratch/, ...); MVTec AD keeps defects only there",
        ),
        "visa": ("copy Data/Images/Normal/ too", "copy Data/Images/Anomaly/ too"),
        "anomalib": (
            "add the normal directory (good/ or normal/)",
            "add one folder per defect type next to the normal one (scratch/, crack/)",
        ),
        "folders": (
            "add a folder of good products (good/, ok/ or pass/)",
            "add a folder per defect type next to the good one (scratch/, crack/)",
        ),
        "visa_csv": ("add rows with label normal", "add rows with label anomaly"),
    }
    manifest = (
        "add rows of good products (status Pass, class good or label 'Status: Pass')",
        "add rows of defective products (status Defect with a defect_type, or a class such as scratch)",
    )
    return fixes.get(kind, manifest)[0 if missing == "pass" else 1]


def class_set_problem(records, layout=None):
    """Why this image set cannot train an inspector, or None: it needs good products (Pass) and
    at least one defect class. A set of one kind only (every image good: an anomaly-detection
    set) is another product. Names the classes found, with their images, and, given the
    ``layout`` (folder_layout's or manifest_layout's), the layout seen and the fix."""
    counts = {}
    for record in records:
        counts[class_key(record)] = counts.get(class_key(record), 0) + 1
    defects = sorted((name for name in counts if name != "Pass"), key=str.lower)
    if "Pass" in counts and defects:
        return None
    found = ", ".join(f"{name} ({counts[name]} image{'s' if counts[name] != 1 else ''})" for name in sorted(counts))
    kind = "only class" if len(counts) == 1 else "only the classes"
    missing = "defect" if not defects else "pass"
    message = (
        f"found {kind} {found or 'none'}; an inspector needs Pass and at least one defect class "
        f"(this set has no {'defect class' if missing == 'defect' else 'Pass class (good products)'}; "
        "a set of one kind only is for anomaly detection, another product)"
    )
    if layout:
        message += f"; layout seen: {layout['name']}; fix: {layout_fix(layout['kind'], missing)}"
    return message


def manifest_layout(fieldnames, file_name):
    """{"kind", "name"} of a CSV manifest from its header: a VisA split CSV (object, split,
    label, image, mask) or a CSV manifest naming its columns."""
    columns = [str(f).strip().lower() for f in fieldnames or [] if f is not None]
    if {"object", "split", "label", "image"} <= set(columns):
        return {"kind": "visa_csv", "name": f"VisA split CSV {file_name} (label normal/anomaly)"}
    return {"kind": "csv", "name": f"CSV manifest {file_name} (columns {', '.join(columns) or 'none'})"}


def skipped_files_note(skipped, dataset_uri):
    """The note about files directly under a folder tree's prefix."""
    return (
        f"note: skipped {len(skipped)} file(s) directly under {dataset_uri} (not in a class folder): "
        f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}"
    )


def empty_folder_message(source):
    """The error for a folder tree with no images in class folders."""
    prefix, bucket = folder_prefix(source["object_path"]), source["bucket"]
    return (
        f"no images found under gs://{bucket}/{prefix}; expected "
        f"gs://{bucket}/{prefix}<class>/<image>, e.g. pass/img1.png and dent/img2.png"
    )


def drop_repeated_rows(records):
    """(records, number dropped): the same image listed twice with the same label adds nothing,
    so only the first is kept."""
    unique, seen = [], set()
    for record in records:
        key = (record["gcs_uri"], record["label"])
        if key not in seen:
            seen.add(key)
            unique.append(record)
    return unique, len(records) - len(unique)


def failure_message(problems, stage, dataset_uri):
    """The error that lists every problem found (the first 25) at one stage of the import."""
    shown = problems[:25]
    more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    return (
        f"import_dataset: {len(problems)} problem(s) {stage} in {dataset_uri}; no manifest was "
        "written:\n  " + "\n  ".join(shown) + more
    )


# ---- image checks


def image_ref(record):
    """How a problem names an image: "<row or line>: image <uri>" or "image <uri>". A URI is cut
    at 1,300 characters: no longer one names a Cloud Storage object (bucket 222, object 1,024)."""
    uri = cut(record["gcs_uri"], 1300)
    return f"{record['where']}: image {uri}" if record["where"] else f"image {uri}"


def image_extension(uri):
    """The file extension of an image URI, lower case, without the dot ("" when none)."""
    import posixpath

    return posixpath.splitext(uri)[1].lower().lstrip(".")


def pillow_format_of(extension):
    """The format Pillow reports for a file with this extension; None for HEIC/HEIF (Pillow
    cannot decode them) and for formats Gemini does not accept."""
    return {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}.get(image_mime_types().get(extension))


def image_name_problem(record):
    """The problem with an image's file name (an extension Gemini does not accept), or None."""
    extension = image_extension(record["gcs_uri"])
    if extension in image_mime_types():
        return None
    what = f"'.{extension}'" if extension else "no file extension"
    accepted = ", ".join(f".{e}" for e in image_mime_types())
    return (
        f"{image_ref(record)} has an unsupported format ({what}); Gemini accepts PNG, JPEG, WebP and "
        f"HEIC/HEIF ({accepted})"
    )


def image_size_problem(record, size):
    """The problem with an image of ``size`` bytes (None: unknown), or None."""
    if size is not None and size > max_image_bytes():
        return f"{image_ref(record)} is {size / 2**20:.1f} MB; Vertex AI accepts at most 20 MB per image"
    return None


def max_image_pixels():
    """The most pixels (width x height) the pipeline decodes in one image: 40 megapixels.

    The pipeline's own limit, not Vertex AI's. A 20 MB file can hold an image that decodes to
    gigabytes (a flat 30000x30000 PNG is a few MB), and Pillow's own guard (89 megapixels, an
    error only above twice that) lets 178 megapixels through: 0.5 GB as RGB, per image, per
    download worker. 40 megapixels (e.g. 7300x5500) is at most 160 MB as RGBA (the local model
    reads at most 224 px a side).
    """
    return 40_000_000


def image_pixels_problem(record, data):
    """The problem with an image whose header names more than max_image_pixels() pixels, or None.

    Reads the header only (Pillow decodes nothing at open), so call it before anything decodes
    the bytes. Bytes Pillow cannot open get None here: image_content_problem says why.
    """
    import io
    import warnings

    from PIL import Image

    limit = max_image_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError:  # over twice Pillow's limit: far over ours
        return (
            f"{image_ref(record)} has more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; the pipeline "
            f"decodes at most {limit / 1e6:.0f} megapixels per image: scale it down"
        )
    except Exception:  # Pillow raises many types for broken files
        return None
    if width * height > limit:
        return (
            f"{image_ref(record)} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); the "
            f"pipeline decodes at most {limit / 1e6:.0f} megapixels per image: scale it down"
        )
    return None


def decoded_format(data):
    """(format, None) when Pillow decodes ``data`` (MPO counts as JPEG), else (None, error)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            actual = {"MPO": "JPEG"}.get(image.format, image.format)
            if actual == "JPEG":  # a reduced decode of a JPEG proves it readable, at a fraction of the cost
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except Exception as error:  # Pillow raises many types for broken files
        return None, f"{type(error).__name__}: {error}"
    return actual, None


def image_content_problem(record, data):
    """The problem with an image's bytes (empty, over 20 MB, not the format its extension says,
    not decodable), or None. HEIC/HEIF get a header check only: an ISO-BMFF ftyp box."""
    if not data:
        return f"{image_ref(record)} is empty (0 bytes)"
    too_large = image_size_problem(record, len(data))
    if too_large:
        return too_large
    extension = image_extension(record["gcs_uri"])
    expected = pillow_format_of(extension)
    if expected is None:
        return None if data[4:8] == b"ftyp" else f"{image_ref(record)} is not a HEIC/HEIF file (no ftyp header)"
    actual, error = decoded_format(data)
    if error:
        return f"{image_ref(record)} is unreadable: Pillow cannot decode it ({error})"
    if actual != expected:
        return (
            f"{image_ref(record)} is a {actual} file but named .{extension}; Gemini accepts PNG, JPEG, WebP "
            "and HEIC/HEIF, and the file type must match the extension"
        )
    return None


def image_digest(record, data):
    """(sha256 hex, None) for good image bytes, or (None, problem)."""
    import hashlib

    problem = image_content_problem(record, data)
    return (None, problem) if problem else (hashlib.sha256(data).hexdigest(), None)


# ---- class checks, warnings and notes (records carry their sha256 by now)


def content_conflicts(records):
    """(problems, copies): one problem per content (sha256) labelled with two classes, and the
    number of images that repeat another image's content."""
    from collections import defaultdict

    by_content = defaultdict(list)
    for record in records:
        if record.get("sha256"):  # an image that failed its checks has no content to compare
            by_content[record["sha256"]].append(record)
    problems, copies = [], 0
    for digest, group in by_content.items():
        first = group[0]
        other = next((r for r in group[1:] if class_key(r) != class_key(first)), None)
        if other is not None:
            problems.append(
                f"{image_ref(first)} and {image_ref(other)} have the same content "
                f"(sha256 {digest[:12]}...) but the classes {quoted(class_key(first))} and {quoted(class_key(other))}"
            )
        copies += len(group) - 1
    return problems, copies


def small_class_problems(records):
    """A problem for each class with fewer than 2 distinct images (it cannot be split)."""
    from collections import defaultdict

    distinct, members = defaultdict(set), defaultdict(list)
    for record in records:
        # An image that failed its checks counts as distinct: it is reported on its own, and its
        # class must not be called too small for it.
        distinct[class_key(record)].add(record.get("sha256") or record["gcs_uri"])
        members[class_key(record)].append(record)
    return [
        f"class {quoted(name)} has only {len(distinct[name])} distinct image "
        f"({'; '.join(image_ref(r) for r in members[name][:3])}); each class needs at least 2 "
        "to be split: add images or remove the class"
        for name in sorted(distinct, key=str.lower)
        if len(distinct[name]) < 2
    ]


def class_counts(records):
    """Images per class, in order of first appearance."""
    from collections import Counter

    return Counter(class_key(record) for record in records)


def class_summary(counts):
    """ "Pass 12, Dent 2": classes by count, largest first."""
    return ", ".join(
        f"{cut(name, 60)} {count}" for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def import_report(records, layout, dataset_uri, imbalance_warning_ratio, notes):
    """The lines printed after a successful import: a summary, then warnings and notes.

    ``notes`` counts "duplicate_rows", "duplicate_images" and "prompt_dropped".
    """
    counts = class_counts(records)
    summary = class_summary(counts)
    lines = [f"imported {len(records)} images in {len(counts)} classes from {dataset_uri} ({layout}): {summary}"]
    if len(counts) == 1:
        lines.append(
            f"warning: only one class ({cut(next(iter(counts)), 60)}); the inspector cannot learn to tell classes apart"
        )
    largest, smallest = max(counts.values()), min(counts.values())
    if smallest and largest / smallest > imbalance_warning_ratio:
        lines.append(
            f"warning: the classes are imbalanced ({summary}; largest/smallest = {largest / smallest:.1f} > "
            f"{imbalance_warning_ratio:g}); consider the oversample_rare_classes=True pipeline parameter "
            "or more images of the rare classes"
        )
    small = sorted(cut(name, 60) for name, count in counts.items() if count < 10)
    if small:
        lines.append(
            f"note: {', '.join(small)} ha{'s' if len(small) == 1 else 've'} fewer than 10 images; with an "
            "80/10/10 split such a class may get no validation or test example"
        )
    if notes.get("duplicate_rows"):
        lines.append(f"note: dropped {notes['duplicate_rows']} repeated row(s) (same image, same label)")
    if notes.get("duplicate_images"):
        lines.append(
            f"note: {notes['duplicate_images']} image(s) repeat the content of another image; the split "
            "keeps copies together"
        )
    untyped = sum(1 for r in records if r["status"] == "Defect" and defect_type_of(r["label"]) is None)
    if untyped:
        lines.append(
            f"note: {untyped} defect label(s) name no type as 'Defect - <Type>'; the evaluation scores "
            "their status only"
        )
    heic = sum(1 for r in records if r["gcs_uri"].lower().endswith((".heic", ".heif")))
    if heic:
        lines.append(
            f"note: {heic} HEIC/HEIF image(s) were checked by extension, size and header only "
            "(Pillow cannot decode them)"
        )
    if notes.get("prompt_dropped"):
        lines.append(
            "note: prompts and system instructions in the file are replaced by the pipeline's prompt and "
            "system_instruction parameters"
        )
    return lines


def manifest_row(record):
    """A record as a manifest row (manifests.manifest_columns)."""
    import posixpath

    return {
        "image_name": posixpath.basename(record["gcs_uri"]),
        **{column: record[column] for column in manifest_columns()[1:]},
    }


def manifest_metadata(records, layout, dataset_uri):
    """The imported manifest's artifact metadata."""
    return {
        "num_images": len(records),
        "num_defects": sum(1 for r in records if r["status"] == "Defect"),
        "class_counts": dict(class_counts(records)),
        "layout": layout,
        "dataset_uri": dataset_uri,
    }


# ---- tuning examples (build_tuning_jsonl)


def check_split_rows(rows, split):
    """``rows`` of a split's manifest; ValueError naming the first row without a gs:// gcs_uri and
    a label (the header is line 1)."""
    for number, row in enumerate(rows, start=2):
        if not (row.get("gcs_uri") or "").startswith("gs://") or not (row.get("label") or "").strip():
            raise ValueError(
                f"{split} manifest line {number}: needs a gs:// gcs_uri and a non-empty label, "
                f"got {row.get('gcs_uri')!r} and {row.get('label')!r}"
            )
    return rows


def oversample_rows(rows):
    """Training rows with rarer labels repeated until each label has as many rows as the most
    common one (no more: each label is trimmed back to that count)."""
    import math
    from collections import Counter

    counts = Counter(row["label"] for row in rows)
    top = max(counts.values())
    repeated = [copy for row in rows for copy in [row] * math.ceil(top / counts[row["label"]])]
    kept, seen = [], Counter()
    for row in repeated:
        if seen[row["label"]] < top:
            seen[row["label"]] += 1
            kept.append(row)
    return kept


def tuning_example(row, prompt, system_instruction="", media_resolution=""):
    """One Gemini SFT line: a user turn with the prompt and the image as fileData (with its
    part-level ``mediaResolution`` when ``media_resolution`` is a level such as "low"), a model
    turn with the label, and the system instruction when given."""
    extension = row["gcs_uri"].rsplit(".", 1)[-1].lower()
    image = {
        "fileData": {
            "mimeType": image_mime_types().get(extension, f"image/{extension}"),
            "fileUri": row["gcs_uri"],
        }
    }
    if media_resolution:
        image["mediaResolution"] = {"level": media_resolution_level(media_resolution)}
    example = {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": prompt}, image],
            },
            {"role": "model", "parts": [{"text": row["label"].strip()}]},
        ]
    }
    if system_instruction.strip():
        example["systemInstruction"] = {"role": "system", "parts": [{"text": system_instruction.strip()}]}
    return example


def tuning_example_problem(example, sizes):
    """The first reason Vertex AI would refuse this SFT line, or None. ``sizes`` maps each image
    URI that exists to its size in bytes."""
    contents = example.get("contents") or []
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
    if len(files) > max_images_per_example():
        return f"{len(files)} images; Vertex AI accepts at most {max_images_per_example()} per example"
    for file in files:
        if file["mimeType"] not in image_mime_types().values():
            return f"{file['fileUri']} has the unsupported type {file['mimeType']}; use PNG, JPEG, WebP or HEIC"
        size = sizes.get(file["fileUri"])
        if size is None:
            return f"{file['fileUri']} does not exist"
        if size > max_image_bytes():
            return f"{file['fileUri']} is {size / 2**20:.1f} MB; Vertex AI accepts at most 20 MB per image"
    return None


def jsonl_texts(splits, prompt, system_instruction, sizes, media_resolution=""):
    """{split: JSONL text} for {split: manifest rows}, every line validated first; ValueError
    naming the file, line and reason of the first line Vertex AI would refuse."""
    import json

    texts = {}
    for split, rows in splits.items():
        examples = [tuning_example(row, prompt, system_instruction, media_resolution) for row in rows]
        for number, example in enumerate(examples, start=1):
            reason = tuning_example_problem(example, sizes)
            if reason:
                raise ValueError(f"{split}.jsonl line {number}: {reason}")
        texts[split] = "".join(json.dumps(example) + "\n" for example in examples)
    return texts


def jsonl_folder_path(jsonl_folder, texts):
    """The folder of one set of JSONL files: named by a hash of their content, so files are
    written once and never overwritten (a running tuning job or a cached task keeps its data)."""
    import hashlib

    digest = hashlib.sha256("".join(texts.values()).encode()).hexdigest()[:16]
    return f"{jsonl_folder.strip('/')}/{digest}"


# ---- a tuning JSONL as Vertex AI reads it, line by line (pipeline/validate.py)


def cut(text, limit=200):
    """``text`` (any value, as str) cut to ``limit`` characters, for messages about arbitrary input;
    lone surrogates (JSON can carry them) are written as \\udxxx so that the message can be printed."""
    text = text if isinstance(text, str) else repr(text)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def jsonl_problem_kinds():
    """Kinds of problem in a tuning JSONL, in report order -> how to fix that kind in general."""
    return {
        "json": "write each example as one JSON object on one line of UTF-8 text",
        "format": "give each line a 'contents' list of turns (Gemini's format) or a chat 'messages' list",
        "roles": "start with a user turn, alternate user and model, and end with the model's answer",
        "parts": "give every turn text, and images as fileData parts of the user turns",
        "system_instruction": "put the system instruction in the line's systemInstruction field (text parts only)",
        "mime": "set fileData.mimeType to image/png, image/jpeg, image/webp, image/heic or image/heif",
        "image_count": "split the example: Vertex AI accepts at most 30 images per example",
        "no_image": "add the product image as a fileData part of the user turn",
        "image_missing": "point fileUri at an image that exists in Cloud Storage (gs://bucket/object)",
        "image_size": "re-encode the image (JPEG, or fewer pixels) to at most 20 MB",
        "tokens": "shorten the text or use fewer images",
        "media_resolution": "give image parts a mediaResolution level the base model offers, or none",
        "file": "fix the file as a whole",
    }


def jsonl_problem(line, kind, message, fix=""):
    """One problem of a tuning JSONL: its 1-based line (None: the whole file), its kind (a key of
    jsonl_problem_kinds), what is wrong, and how to fix it (the kind's general fix when empty)."""
    return {"line": line, "kind": kind, "message": message, "fix": fix or jsonl_problem_kinds()[kind]}


def jsonl_lines(data):
    """(line number, raw line) for every non-blank line of a JSONL file's bytes or text.

    Lines end at "\\n" only (and a "\\r" before it): a JSON string may hold U+2028 or U+0085,
    which str.splitlines would take for line ends.
    """
    newline, blank = (b"\n", b"") if isinstance(data, bytes) else ("\n", "")
    lines = []
    for number, raw in enumerate(data.split(newline), start=1):
        raw = raw[:-1] if raw[-1:] in (b"\r", "\r") else raw
        if raw.strip() != blank:
            lines.append((number, raw))
    return lines


def jsonl_line_object(raw, line):
    """(object or None, problems) of one line of a JSONL file, bytes or text: UTF-8 (a byte order
    mark on line 1 is a problem, the rest is still read), strict JSON, a JSON object."""
    import json

    problems = []
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = raw[error.start : error.start + 1]
            return None, [
                jsonl_problem(
                    line, "json", f"not UTF-8 text (byte {error.start + 1} is {bad!r})", "save the file as UTF-8"
                )
            ]
    if raw.startswith("\ufeff"):
        problems.append(
            jsonl_problem(
                line,
                "json",
                "the line starts with a UTF-8 byte order mark (BOM)",
                "save the file as UTF-8 without a byte order mark",
            )
        )
        raw = raw[1:]

    def refuse_constant(name):
        raise ValueError(f"{name} is not a JSON value")

    try:
        obj = json.loads(raw, parse_constant=refuse_constant)
    except json.JSONDecodeError as error:
        return None, problems + [jsonl_problem(line, "json", f"not valid JSON ({error.msg}, column {error.colno})")]
    except ValueError as error:  # NaN, Infinity
        return None, problems + [
            jsonl_problem(
                line,
                "json",
                f"not valid JSON ({error})",
                "write numbers as JSON numbers (NaN and Infinity are not JSON)",
            )
        ]
    except RecursionError:
        return None, problems + [jsonl_problem(line, "json", "not valid JSON (nested too deeply to read)")]
    if not isinstance(obj, dict):
        return None, problems + [
            jsonl_problem(line, "json", f"expected a JSON object, got {type(obj).__name__} {quoted(obj)}")
        ]
    return obj, problems


def jsonl_line_format(obj):
    """ "contents", "messages" or None: the format of a decoded JSONL line."""
    if isinstance(obj, dict):
        return next((key for key in ("contents", "messages") if key in obj), None)
    return None


def image_mime_type_of(uri):
    """The MIME type for an image URI's extension, as tuning_example gives it."""
    extension = uri.rsplit(".", 1)[-1].lower() if isinstance(uri, str) else ""
    return image_mime_types().get(extension, f"image/{extension}")


def contents_turns(obj):
    """(system parts or None, turns, problems) of a Gemini ``contents`` line. A turn is
    {"name", "role", "said", "parts": [(name, part)]}; a problem is (kind, message, fix)."""
    problems = []
    system = obj.get("systemInstruction", obj.get("system_instruction"))
    system_parts = None
    if system is not None:
        parts = system.get("parts") if isinstance(system, dict) else None
        if not isinstance(parts, list) or not parts:
            problems.append(
                (
                    "system_instruction",
                    f"systemInstruction must be an object with a non-empty parts list, got {quoted(system)}",
                    "",
                )
            )
        else:
            system_parts = [(f"systemInstruction.parts[{j}]", part) for j, part in enumerate(parts)]
    contents = obj.get("contents")
    if not contents:
        keys = ", ".join(cut(key, 40) for key in list(obj)[:8]) or "none"
        return (
            system_parts,
            [],
            problems
            + [
                ("format", "no contents", f"give the line a 'contents' list of user and model turns (its keys: {keys})")
            ],
        )
    if not isinstance(contents, list):
        return (
            system_parts,
            [],
            problems + [("format", f"contents must be a list of turns, got {type(contents).__name__}", "")],
        )
    turns = []
    for i, turn in enumerate(contents):
        name = f"contents[{i}]"
        if not isinstance(turn, dict):
            problems.append(
                ("format", f"{name} is not an object", "write each turn as {\"role\": ..., \"parts\": [...]}")
            )
            turns.append({"name": name, "role": "other", "said": None, "parts": [], "broken": True})
            continue
        role = turn.get("role")
        parts = turn.get("parts")
        broken = parts is not None and not isinstance(parts, list)
        if broken:
            problems.append(("parts", f"{name}.parts must be a list, got {type(parts).__name__}", ""))
        turns.append(
            {
                "name": name,
                "role": role if role in ("user", "model", "system") else "other",
                "said": role,
                "parts": [] if broken else [(f"{name}.parts[{j}]", part) for j, part in enumerate(parts or [])],
                "broken": broken,
            }
        )
    return system_parts, turns, problems


def messages_turns(obj):
    """(system parts or None, turns, problems) of a chat ``messages`` line, as the ``contents``
    it converts to: a first "system" message is the system instruction, "user" stays user,
    "assistant" (or "model") is model; text content gives text parts; image_url and fileData
    parts, and gs:// URIs in a user message's text (as import_dataset reads them), give fileData
    parts with the MIME type of the file extension."""
    messages = obj.get("messages")
    if not messages:
        return None, [], [("format", "messages is empty", "give the line a non-empty 'messages' list")]
    if not isinstance(messages, list):
        return None, [], [("format", f"messages must be a list, got {type(messages).__name__}", "")]
    system_parts, turns, problems = None, [], []
    for i, message in enumerate(messages):
        name = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append(
                ("format", f"{name} is not an object", "write each message as {\"role\": ..., \"content\": ...}")
            )
            turns.append({"name": name, "role": "other", "said": None, "parts": [], "broken": True})
            continue
        said = message.get("role")
        role = {"user": "user", "assistant": "model", "model": "model", "system": "system"}.get(
            said if isinstance(said, str) else None, "other"
        )
        content = message.get("parts") if "parts" in message else message.get("content")
        items = content if isinstance(content, list) else [] if content is None else [content]
        parts = []
        for k, item in enumerate(items):
            part_name = f"{name}.content" if not isinstance(content, list) else f"{name}.content[{k}]"
            if isinstance(item, str):
                parts.append((part_name, {"text": item}))
                if role == "user":
                    parts += [
                        (part_name, {"fileData": {"mimeType": image_mime_type_of(uri), "fileUri": uri}})
                        for uri in turn_images(item)[0]
                    ]
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append((part_name, {"text": item["text"]}))
                if role == "user":
                    parts += [
                        (part_name, {"fileData": {"mimeType": image_mime_type_of(uri), "fileUri": uri}})
                        for uri in turn_images(item["text"])[0]
                    ]
            elif isinstance(item, dict) and (item.get("inlineData") or item.get("inline_data")):
                parts.append((part_name, {"inlineData": item.get("inlineData") or item.get("inline_data")}))
            elif isinstance(item, dict) and (item.get("fileData") or item.get("file_data")):
                parts.append((part_name, {"fileData": item.get("fileData") or item.get("file_data")}))
            else:
                found = turn_images([item])[0] if isinstance(item, dict) else []
                parts += [
                    (part_name, {"fileData": {"mimeType": image_mime_type_of(uri), "fileUri": uri}}) for uri in found
                ]
                if not found:
                    parts.append((part_name, item))  # checked, and refused, as a part
        if role == "system" and i == 0:
            system_parts = parts
            continue
        if role == "system":
            problems.append(
                (
                    "system_instruction",
                    f"{name} is a system message; only the first message may be one",
                    "move it to the start, or merge it into the first message",
                )
            )
            continue
        turns.append({"name": name, "role": role, "said": said, "parts": parts, "broken": False})
    return system_parts, turns, problems


def quoted(value, limit=60):
    """``repr(value)`` cut to ``limit`` characters."""
    return cut(repr(value), limit)


def part_problems(name, part, role):
    """(problems, text or None, fileData value or None) of one part of a turn."""
    data_keys = (
        "text",
        "fileData",
        "file_data",
        "inlineData",
        "inline_data",
        "functionCall",
        "function_call",
        "functionResponse",
        "function_response",
        "executableCode",
        "executable_code",
        "codeExecutionResult",
        "code_execution_result",
    )
    if not isinstance(part, dict):
        return (
            [
                (
                    "parts",
                    f"{name} is not an object: {quoted(part)}",
                    "write each part as {\"text\": ...} or {\"fileData\": {...}}",
                )
            ],
            None,
            None,
        )
    present = [key for key in data_keys if key in part]
    if not present:
        keys = ", ".join(cut(key, 40) for key in list(part)[:6]) or "none"
        return [("parts", f"{name} has no text or fileData (its keys: {keys})", "")], None, None
    if len(present) > 1:
        return (
            [
                (
                    "parts",
                    f"{name} has both {present[0]} and {present[1]}; a part holds one of them",
                    "put each in its own part",
                )
            ],
            None,
            None,
        )
    key = present[0]
    if key == "text":
        if not isinstance(part["text"], str):
            return [("parts", f"{name}.text must be a string, got {type(part['text']).__name__}", "")], None, None
        return [], part["text"], None
    if key in ("inlineData", "inline_data"):
        return (
            [
                (
                    "parts",
                    f"{name} holds inline image data; tuning datasets take images only as fileData",
                    "upload the image to Cloud Storage and give its gs:// URI in a fileData part",
                )
            ],
            None,
            None,
        )
    if key in ("fileData", "file_data"):
        if role == "model":
            return (
                [("parts", f"{name}: a model turn may hold only text (the answer)", "move the image to the user turn")],
                None,
                None,
            )
        return [], None, part[key]
    return [("parts", f"{name} is a {key} part; this inspector's examples hold only text and images", "")], None, None


def file_data_problems(name, file, sizes):
    """Problems of one fileData value: its mimeType, its fileUri and, when ``sizes`` is given,
    whether the gs:// object exists and is at most 20 MB (see jsonl_line_problems)."""
    if not isinstance(file, dict):
        return [("parts", f"{name}.fileData must be an object with mimeType and fileUri, got {quoted(file)}", "")]
    uri = file.get("fileUri", file.get("file_uri"))
    mime = file.get("mimeType", file.get("mime_type"))
    problems = []
    if not isinstance(mime, str) or not mime:
        problems.append(("mime", f"{name}.fileData has no mimeType", ""))
    elif mime not in image_mime_types().values():
        which = cut(uri) if isinstance(uri, str) else name
        problems.append(("mime", f"{which} has the unsupported type {cut(mime, 60)}; use PNG, JPEG, WebP or HEIC", ""))
    if not isinstance(uri, str) or not uri.strip():
        return problems + [("image_missing", f"{name}.fileData has no fileUri", "")]
    if uri.startswith("data:"):
        return problems + [
            (
                "parts",
                f"{name} holds inline image data (a data: URL); tuning datasets take images only from Cloud Storage",
                "upload the image and give its gs:// URI",
            )
        ]
    if uri.startswith(("http://", "https://")):
        return problems  # a public URL Vertex AI fetches itself: not looked up here
    if not uri.startswith("gs://"):
        return problems + [
            (
                "image_missing",
                f"{name}: fileUri {cut(uri)} is neither a gs:// URI nor an http(s) URL",
                "upload the image to Cloud Storage and give its gs:// URI",
            )
        ]
    try:
        parse_gcs_uri(uri)
    except ValueError:
        return problems + [("image_missing", f"{name}: {cut(uri)} is not a gs://bucket/object URI", "")]
    if sizes is None or sizes.get(uri, 0) is None:  # not looked up
        return problems
    if uri not in sizes:
        return problems + [("image_missing", f"{cut(uri)} does not exist", "upload the image, or correct the URI")]
    if sizes[uri] > max_image_bytes():
        problems.append(
            ("image_size", f"{cut(uri)} is {sizes[uri] / 2**20:.1f} MB; Vertex AI accepts at most 20 MB per image", "")
        )
    return problems


def system_parts_problems(system_parts):
    """(problems, characters) of a systemInstruction's parts: each must be a text part."""
    problems, characters = [], 0
    for name, part in system_parts or []:
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            problems.append(("system_instruction", f"{name} must be a text part", ""))
        else:
            characters += len(part["text"])
    return problems, characters


def turn_role_problem(turn, expected, answer_role):
    """The problem of a turn whose role is not the ``expected`` one in the user/model
    alternation (a "system" turn has its own), or None."""
    name, role, said = turn["name"], turn["role"], turn["said"]
    if role == "system":
        return (
            "system_instruction",
            f"{name}.role is 'system'; a system instruction goes in the line's systemInstruction field, not in contents",
            "",
        )
    if role == expected:
        return None
    hint = (
        ""
        if role != "other"
        else f"give every turn a role: 'user' or '{answer_role}'"
        if said is None
        else f"the role must be 'user' or '{answer_role}' (Gemini calls the answer turn 'model')"
    )
    return ("roles", f"{name}.role is {quoted(said)}; roles must alternate user/{answer_role}", hint)


def turn_parts_found(turn):
    """What a turn's parts hold: {"problems", "characters", "files" [(part name, fileData)],
    "inline" (inline images), "levels" (each file's mediaResolution)}; a turn without a
    non-empty text part is a problem too."""
    found = {"problems": [], "characters": 0, "files": [], "inline": 0, "levels": []}
    texts = []
    for part_name, part in turn["parts"]:
        problems, text, file = part_problems(part_name, part, turn["role"])
        found["problems"] += problems
        found["inline"] += isinstance(part, dict) and ("inlineData" in part or "inline_data" in part)
        if text is not None:
            texts.append(text)
            found["characters"] += len(text)
        if file is not None:
            found["files"].append((part_name, file))
            found["levels"].append(part_resolution(part))
    if not any(text.strip() for text in texts):
        what = "the answer" if turn["role"] == "model" else "the prompt"
        found["problems"].append(
            ("parts", f"{turn['name']} has no non-empty text part", f"give the turn {what} as a text part")
        )
    return found


def example_tokens_problem(characters, levels, base_model):
    """The problem of an example over ``base_model``'s token limit per example, or None."""
    model = base_model_id(base_model)
    known = gemini_models()
    limit = known.get(model, {}).get("max_example_tokens") or min(m["max_example_tokens"] for m in known.values())
    image_tokens = sum(image_token_count(0, 0, base_model, level) for level in levels)
    tokens = text_token_count(characters) + image_tokens
    if tokens <= limit:
        return None
    return (
        "tokens",
        f"about {tokens:,} tokens ({text_token_count(characters):,} of text, {image_tokens:,} for "
        f"{len(levels)} image(s)); {model} accepts at most {limit:,} per example",
        "",
    )


def turns_problems(system_parts, turns, sizes, base_model):
    """(kind, message, fix) for every problem of an example's turns (contents_turns or
    messages_turns), in the order tuning_example_problem checks."""
    chat = bool(turns) and turns[0]["name"].startswith("messages")
    answer_role = "assistant" if chat else "model"
    problems, characters = system_parts_problems(system_parts)
    files, inline, levels = [], 0, []
    previous = None
    for turn in turns:
        expected = "model" if previous == "user" else "user"
        previous = turn["role"] if turn["role"] in ("user", "model") else expected
        if turn["broken"] and not turn["parts"]:  # its shape was already reported
            continue
        role_problem = turn_role_problem(turn, expected, answer_role)
        found = turn_parts_found(turn)
        problems += ([role_problem] if role_problem else []) + found["problems"]
        characters, inline = characters + found["characters"], inline + found["inline"]
        files, levels = files + found["files"], levels + found["levels"]
    if turns and turns[-1]["role"] != "model":
        fix = f"end the example with {'an assistant' if chat else 'a model'} turn holding the answer"
        problems.append(("roles", "the last turn must be the model's answer", fix))
    if len(files) > max_images_per_example():
        message = f"{len(files)} images; Vertex AI accepts at most {max_images_per_example()} per example"
        problems.append(("image_count", message, ""))
    # Without a user turn the roles problem says it all: there is no turn to put the image in.
    if not files and not inline and any(turn["role"] == "user" for turn in turns):
        problems.append(("no_image", "no image: this inspector learns from a product image in every example", ""))
    for part_name, file in files:
        problems += file_data_problems(part_name, file, sizes)
    problems += resolution_problems(files, levels, base_model)
    tokens_problem = example_tokens_problem(characters, levels, base_model)
    return problems + ([tokens_problem] if tokens_problem else [])


def part_resolution(part):
    """The ``mediaResolution.level`` of an image part ("" for none; a malformed value as given)."""
    value = part.get("mediaResolution", part.get("media_resolution")) if isinstance(part, dict) else None
    if value is None:
        return ""
    if isinstance(value, dict) and isinstance(value.get("level"), str):
        return value["level"]
    return repr(value)


def resolution_problems(files, levels, base_model):
    """(kind, message, fix) for each image part whose mediaResolution ``base_model`` does not take."""
    problems = []
    for (part_name, _), level in zip(files, levels, strict=True):
        problem = media_resolution_problem(base_model, level) if level != "MEDIA_RESOLUTION_UNSPECIFIED" else None
        if problem:
            problems.append(("media_resolution", f"{part_name}.mediaResolution: {problem}", ""))
    return problems


def jsonl_line_problems(obj, line, sizes=None, base_model="gemini-3.5-flash"):
    """Every reason Vertex AI's Gemini tuning, or this inspector, would refuse one JSONL line,
    as jsonl_problem dicts ([] when none).

    ``obj`` is the decoded line (jsonl_line_object): a Gemini ``contents`` example, or a chat
    ``messages`` example checked as the contents it converts to (messages_turns). ``sizes`` maps
    gs:// image URIs to their size in bytes: a URI missing from it does not exist, one mapped to
    None could not be looked up; ``sizes=None`` checks neither. The token limit is
    ``base_model``'s (platform_facts.gemini). Problems come in the order
    tuning_example_problem checks, so for a line it refuses its reason is the first message.
    """
    if not isinstance(obj, dict):
        return [jsonl_problem(line, "json", f"expected a JSON object, got {type(obj).__name__}")]
    if jsonl_line_format(obj) == "messages":
        system_parts, turns, found = messages_turns(obj)
    else:
        system_parts, turns, found = contents_turns(obj)
    if turns:
        found += turns_problems(system_parts, turns, sizes, base_model)
    return [jsonl_problem(line, kind, message, fix) for kind, message, fix in found]


def example_image_uris(obj):
    """The fileData URIs of a decoded JSONL line (either format), in order, for looking up sizes."""
    if not isinstance(obj, dict):
        return []
    system_parts, turns, _ = messages_turns(obj) if jsonl_line_format(obj) == "messages" else contents_turns(obj)
    uris = []
    for turn in turns:
        for _, part in turn["parts"]:
            file = part.get("fileData", part.get("file_data")) if isinstance(part, dict) else None
            uri = file.get("fileUri", file.get("file_uri")) if isinstance(file, dict) else None
            if isinstance(uri, str):
                uris.append(uri)
    return uris


def jsonl_file_problems(examples, validation=False):
    """Problems of a tuning JSONL as a whole: no examples; over tuning_limits()'s validation
    maximum when it is a validation file."""
    if not examples:
        return [jsonl_problem(None, "file", "the file has no examples", "give one JSON example per line")]
    limit = tuning_limits()["max_validation_examples"]
    if validation and examples > limit:
        return [
            jsonl_problem(
                None,
                "file",
                f"{examples:,} examples; a validation dataset may have at most {limit:,}",
                f"keep at most {limit:,} examples in the validation file",
            )
        ]
    return []
