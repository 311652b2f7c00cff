"""The pure rules of the data components (components/dataset_rules.py), no server needed.

Table-driven: each case is an input and the exact result or message the components rely on
(tests/test_import_dataset.py checks the same messages end to end against the storage emulator).
"""

import hashlib
import inspect
import io
import json
import re

import pytest
from PIL import Image

from components import dataset_rules as rules
from components.labels import LABELS, PROMPT
from components.manifests import manifest_columns

DENT = "Status: Defect - Dent detected on product surface."


def source(uri="gs://bkt/data/set.csv", pass_label="Status: Pass", label_template=""):
    return rules.dataset_source(uri, pass_label, label_template)


def image_bytes(fmt="PNG", size=(16, 16)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def record(
    uri="gs://bkt/a.png", where="m.csv row 2", status="Pass", defect_type="None", label="Status: Pass", sha256=None
):
    r = rules.image_record(where, uri, status, defect_type, label)
    if sha256 is not None:
        r["sha256"] = sha256
    return r


# ---- shipping: tests/test_shipping.py checks every component's additional_funcs


def test_the_rules_are_self_contained_functions():
    from components.build_tuning_jsonl import build_tuning_jsonl
    from components.import_dataset import import_dataset
    from components.shipping import shipped_functions

    for func in shipped_functions(import_dataset.python_func) + shipped_functions(build_tuning_jsonl.python_func):
        assert inspect.isfunction(func) and inspect.getsource(func).startswith("def "), func


# ---- parameters and the dataset's location


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("gs://b/x.csv", "gs://b/x.csv"),
        ("  gs://b/folder/ \n", "gs://b/folder/"),
        (
            "/local/folder",
            ValueError("dataset_uri must be a gs:// URI of a folder, .csv or .jsonl, got '/local/folder'"),
        ),
        (None, ValueError("dataset_uri must be a gs:// URI of a folder, .csv or .jsonl, got ''")),
    ],
)
def test_check_dataset_uri(uri, expected):
    if isinstance(expected, Exception):
        with pytest.raises(ValueError) as caught:
            rules.check_dataset_uri(uri)
        assert str(caught.value) == str(expected)
    else:
        assert rules.check_dataset_uri(uri) == expected


@pytest.mark.parametrize(
    "pass_label, template, warnings",
    [
        ("Status: Pass", "", []),
        ("Status: Pass", "Status: Defect - {defect_type} found.", []),
        ("Status: Pass.", "", []),  # a final period still reads as Pass
        (
            "OK",
            "",
            [
                "warning: pass_label 'OK' is not 'Status: Pass'; the evaluation scores an answer as Pass only "
                "when it says 'Status: Pass'"
            ],
        ),
        (
            "Status: Pass",
            "Status: Defect",
            [
                "warning: label_template 'Status: Defect' has no {defect_type}: every "
                "defect class gets the same answer, so the model cannot learn to name the "
                "type"
            ],
        ),
    ],
)
def test_label_parameter_warnings(pass_label, template, warnings):
    assert rules.label_parameter_warnings(pass_label, template) == warnings


@pytest.mark.parametrize(
    "pass_label, template, message",
    [
        ("  ", "", "pass_label is empty: good products need an answer text"),
        (
            "Status: Pass",
            "Status: Defect - {type}",
            "label_template 'Status: Defect - {type}' uses the placeholder(s) ['type']; the only one allowed is "
            "{defect_type}",
        ),
        (
            "Status: Pass",
            "Status: {defect_type:d}",
            "label_template 'Status: {defect_type:d}' is not a valid template: Unknown format code 'd'",
        ),
    ],
)
def test_label_parameter_errors(pass_label, template, message):
    with pytest.raises(ValueError) as caught:
        rules.label_parameter_warnings(pass_label, template)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    "uri, expected",
    [
        (
            "gs://bkt/data/set.csv",
            {"bucket": "bkt", "object_path": "data/set.csv", "base_dir": "data", "file_name": "set.csv"},
        ),
        ("gs://my.bucket-1/", {"bucket": "my.bucket-1", "object_path": "", "base_dir": "", "file_name": ""}),
        ("gs://b/x.csv", ValueError("dataset_uri 'gs://b/x.csv' does not name a valid bucket")),
        ("gs://Upper/x.csv", ValueError("dataset_uri 'gs://Upper/x.csv' does not name a valid bucket")),
    ],
)
def test_dataset_source(uri, expected):
    if isinstance(expected, Exception):
        with pytest.raises(ValueError, match=re.escape(str(expected))):
            rules.dataset_source(uri)
    else:
        got = rules.dataset_source(uri, "Status: Pass.", "T {defect_type}")
        assert {k: got[k] for k in expected} == expected
        assert [got[k] for k in ("dataset_uri", "pass_label", "label_template")] == [
            uri,
            "Status: Pass.",
            "T {defect_type}",
        ]


@pytest.mark.parametrize(
    "uri, layout",
    [
        ("gs://bkt/parts/", "folder"),
        ("gs://bkt/parts", "folder"),
        ("gs://bkt/", "folder"),
        ("gs://bkt/data/Set.CSV", "csv"),
        ("gs://bkt/train.jsonl", "jsonl"),
        ("gs://bkt/v1.2/", "folder"),  # a trailing slash wins over a dotted folder name
        (
            "gs://bkt/data.parquet",
            ValueError(
                "dataset_uri gs://bkt/data.parquet ends in '.parquet': give a .csv or "
                ".jsonl manifest or a folder (gs://bucket/prefix/ holding <class>/<image>)"
            ),
        ),
    ],
)
def test_dataset_layout(uri, layout):
    if isinstance(layout, Exception):
        with pytest.raises(ValueError) as caught:
            rules.dataset_layout(source(uri))
        assert str(caught.value) == str(layout)
    else:
        assert rules.dataset_layout(source(uri)) == layout


def test_decode_manifest_text():
    assert rules.decode_manifest_text("\ufeffa,b\n".encode(), "gs://b/x.csv") == "a,b\n"
    with pytest.raises(ValueError, match=r"^gs://bkt/x.csv is not UTF-8 text: "):
        rules.decode_manifest_text(b"\xff\xfe\xfa", "gs://bkt/x.csv")


# ---- classes and labels


@pytest.mark.parametrize(
    "word, expected",
    [
        ("pass", ("Pass", "None")),
        ("OK", ("Pass", "None")),
        (" Good ", ("Pass", "None")),
        ("normal", ("Pass", "None")),
        ("defect", ("Defect", "Defect")),
        ("NG", ("Defect", "Defect")),
        ("nok", ("Defect", "Defect")),
        ("Bad", ("Defect", "Defect")),
        ("failed", ("Defect", "Defect")),
        ("dent", ("Defect", "Dent")),
        ("surface_dent", ("Defect", "Surface-Dent")),
        ("SURFACE dent", ("Defect", "Surface-Dent")),
        ("crack", ("Defect", "Crack")),
        ("DISCOLORATION", ("Defect", "Discoloration")),
        ("2nd-burr", None),
        ("", None),
        ("__", None),
        (None, None),
    ],
)
def test_class_of_word(word, expected):
    assert rules.class_of_word(word) == expected


@pytest.mark.parametrize(
    "status, defect_type, pass_label, template, label",
    [
        ("Pass", "None", " Status: Pass. ", "", "Status: Pass."),
        ("Defect", "Defect", "Status: Pass", "T {defect_type}", "Status: Defect"),
        ("Defect", "Dent", "Status: Pass", " Status: Defect - {defect_type} found. ", "Status: Defect - Dent found."),
        ("Defect", "Crack", "Status: Pass", "", LABELS["Crack"]),
        ("Defect", "scratch", "Status: Pass", "", LABELS["Scratch"]),
        ("Defect", "Dent", "Status: Pass", "", DENT),
    ],
)
def test_label_of(status, defect_type, pass_label, template, label):
    assert rules.label_of(status, defect_type, pass_label, template) == label


@pytest.mark.parametrize(
    "label, pass_label, expected",
    [
        ("Status: Pass", "Status: Pass", ("Pass", "None")),
        ("status: pass.", "Status: Pass", ("Pass", "None")),
        ("All good", " all GOOD ", ("Pass", "None")),
        (LABELS["Crack"], "Status: Pass", ("Defect", "Crack")),
        ("Status: Defect - Burr (edge) at 3 o'clock.", "Status: Pass", ("Defect", "Burr")),
        ("Status: Defect", "Status: Pass", ("Defect", "Defect")),
        ("Status: Pass - no defect", "Status: Pass", ("Defect", "Defect")),
    ],
)
def test_class_of_label(label, pass_label, expected):
    assert rules.class_of_label(label, pass_label) == expected


@pytest.mark.parametrize(
    "status, defect_type, key", [("Pass", "None", "Pass"), ("Defect", "Dent", "Dent"), ("Defect", "Defect", "Defect")]
)
def test_class_key(status, defect_type, key):
    assert rules.class_key({"status": status, "defect_type": defect_type}) == key


# ---- manifest rows


@pytest.mark.parametrize(
    "value, expected",
    [
        ("gs://other/x/y.png", ("gs://other/x/y.png", None)),
        (" images/a.png ", ("gs://bkt/data/images/a.png", None)),
        ("./images/../b.png", ("gs://bkt/data/b.png", None)),
        ("imgs\\c.png", ("gs://bkt/data/imgs/c.png", None)),
        ("../up.png", ("gs://bkt/up.png", None)),
        ("", (None, "no image URI")),
        (None, (None, "no image URI")),
        (7, (None, "no image URI")),
        ("gs://bucket-only", (None, "'gs://bucket-only' is not a gs://bucket/object URI")),
        (
            "https://example.com/a.png",
            (
                None,
                "image 'https://example.com/a.png': only gs:// URIs (or paths relative to "
                "the manifest) are supported; copy the image to Cloud Storage",
            ),
        ),
        (
            "/home/me/a.png",
            (
                None,
                "image '/home/me/a.png' is a local path; upload the dataset first "
                "(pipeline.uploads.upload_local_dataset or `python -m pipeline run --dataset PATH`)",
            ),
        ),
        (
            "C:\\img\\a.png",
            (
                None,
                "image 'C:\\\\img\\\\a.png' is a local path; upload the dataset first "
                "(pipeline.uploads.upload_local_dataset or `python -m pipeline run --dataset PATH`)",
            ),
        ),
        (
            "~/a.png",
            (
                None,
                "image '~/a.png' is a local path; upload the dataset first "
                "(pipeline.uploads.upload_local_dataset or `python -m pipeline run --dataset PATH`)",
            ),
        ),
        ("../../escape.png", (None, "image '../../escape.png' points outside the bucket")),
    ],
)
def test_resolve_image_ref(value, expected):
    assert rules.resolve_image_ref(value, "bkt", "data") == expected


@pytest.mark.parametrize(
    "status, defect_type, expected",
    [
        ("Pass", "None", (("Pass", "None"), None)),
        ("ok", "", (("Pass", "None"), None)),
        ("", "none", (("Pass", "None"), None)),
        ("", "good", (("Pass", "None"), None)),
        ("Defect", "dent", (("Defect", "Dent"), None)),
        ("DEFECT", "n/a", (("Defect", "Defect"), None)),
        ("NG", "ng", (("Defect", "Defect"), None)),
        ("", "surface_scratch", (("Defect", "Surface-Scratch"), None)),
        ("Pass", "Dent", (None, "status 'Pass' but defect_type 'Dent'; a good product has no defect type")),
        ("Defect", "3mm", (None, "defect_type '3mm' must start with a letter")),
        (
            "Broken",
            "",
            (None, "status 'Broken' is neither Pass nor Defect (Pass/OK/Good/Normal or Defect/NG/Fail/Bad)"),
        ),
    ],
)
def test_class_from_status_columns(status, defect_type, expected):
    assert rules.class_from_status_columns(status, defect_type) == expected


@pytest.mark.parametrize(
    "label, found, type_raw, expected",
    [
        ("Status: Pass", ("Pass", "None"), "", ("None", None)),
        (DENT, ("Defect", "Dent"), "dent", ("Dent", None)),
        (DENT, ("Defect", "Defect"), "", ("Dent", None)),  # the label names the type the columns left out
        ("Status: Defect", ("Defect", "Dent"), "Dent", ("Dent", None)),  # an untyped label keeps the column's type
        (
            "Status: Pass",
            ("Defect", "Dent"),
            "Dent",
            (None, "the label 'Status: Pass' says Pass but the status column says Defect"),
        ),
        (
            LABELS["Crack"],
            ("Defect", "Dent"),
            "dent",
            (None, f"the label {LABELS['Crack']!r} names 'Crack' but the defect_type column says 'dent'"),
        ),
    ],
)
def test_reconcile_label(label, found, type_raw, expected):
    assert rules.reconcile_label(label, found, type_raw) == expected


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"label": "Status: Pass"}, (("Pass", "None", "Status: Pass"), None)),
        ({"label": DENT}, (("Defect", "Dent", DENT), None)),
        ({"status": "Defect", "defect_type": "dent"}, (("Defect", "Dent", "Status: Defect - Dent found."), None)),
        ({"status": "Pass", "defect_type": ""}, (("Pass", "None", "Status: Pass."), None)),
        ({"status": "Defect", "label": DENT}, (("Defect", "Dent", DENT), None)),
        ({}, (None, "no label; give a label column or status + defect_type columns")),
        ({"status": "x"}, (None, "status 'x' is neither Pass nor Defect (Pass/OK/Good/Normal or Defect/NG/Fail/Bad)")),
    ],
)
def test_class_of_row(row, expected):
    labels = source(pass_label="Status: Pass.", label_template="Status: Defect - {defect_type} found.")
    assert rules.class_of_row(row, labels) == expected


@pytest.mark.parametrize(
    "row, expected_record, problems",
    [
        ({" Image ": " a.png ", "LABEL": DENT}, ("gs://bkt/data/a.png", "Defect", "Dent", DENT), []),
        (
            {"path": "a.png", "gcs_uri": "gs://x/y.png", "status": "pass", None: ["extra"]},
            ("gs://x/y.png", "Pass", "None", "Status: Pass"),
            [],
        ),
        (
            {"file": "a.png", "label": "Status: Pass"},
            None,
            ["r 2: no image column; expected one of gcs_uri, image_uri, uri, image, path"],
        ),
        (
            {"uri": "/abs/a.png", "status": "Broken"},
            None,  # both problems of the row are reported
            [
                "r 2: image '/abs/a.png' is a local path; upload the dataset first (pipeline.uploads.upload_local_dataset "
                "or `python -m pipeline run --dataset PATH`)",
                "r 2: status 'Broken' is neither Pass nor Defect (Pass/OK/Good/Normal or Defect/NG/Fail/Bad)",
            ],
        ),
        ({"uri": "", "label": "Status: Pass"}, None, ["r 2: no image URI"]),
    ],
)
def test_columns_record(row, expected_record, problems):
    got, found = rules.columns_record(row, "r 2", source())
    assert found == problems
    if expected_record is None:
        assert got is None
    else:
        assert (got["gcs_uri"], got["status"], got["defect_type"], got["label"]) == expected_record
        assert got["where"] == "r 2" and got["size"] is None


@pytest.mark.parametrize(
    "content, text",
    [
        ("Status: Pass", "Status: Pass"),
        ([{"text": "Status: "}, {"text": "Pass"}], "Status:  Pass"),
        ({"text": " Status: Pass "}, "Status: Pass"),
        (["a", {"fileData": {}}, 3, "b"], "a  b"),
    ],
)
def test_turn_text(content, text):
    assert rules.turn_text(content) == text


@pytest.mark.parametrize(
    "content, images, reasons",
    [
        ("Inspect gs://b/a.png.", ["gs://b/a.png"], []),
        ("two: gs://b/a.png, (gs://b/c.jpg)", ["gs://b/a.png", "gs://b/c.jpg"], []),
        ([{"text": "x"}, {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/a.png"}}], ["gs://b/a.png"], []),
        ([{"file_data": {"file_uri": "img/a.png"}}], ["img/a.png"], []),
        ([{"type": "image_url", "image_url": {"url": "gs://b/u.png"}}], ["gs://b/u.png"], []),
        ([{"imageUrl": "gs://b/v.png"}], ["gs://b/v.png"], []),
        ([{"text": "see gs://b/t.png"}], ["gs://b/t.png"], []),
        ([{"uri": "gs://b/w.png"}, {"image": "gs://b/z.png"}], ["gs://b/w.png", "gs://b/z.png"], []),
        (
            [{"inlineData": {"data": "..."}}],
            [],
            ["inline image data cannot be imported; use fileData with a gs:// URI"],
        ),
        ([None, 3, {"text": "no image"}], [], []),
    ],
)
def test_turn_images(content, images, reasons):
    assert rules.turn_images(content) == (images, reasons)


def user(*parts):
    return {"role": "user", "parts": list(parts)}


def model(text, role="model"):
    return {"role": role, "parts": [{"text": text}]}


FILE = {"fileData": {"mimeType": "image/png", "fileUri": "img/a.png"}}


@pytest.mark.parametrize(
    "turns, expected, problems",
    [
        ([user({"text": "x"}, FILE), model(DENT)], ("gs://bkt/data/img/a.png", "Defect", "Dent", DENT), []),
        (
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "see gs://o/b.jpg"},
                {"role": "assistant", "content": " Status: Pass "},
            ],
            ("gs://o/b.jpg", "Pass", "None", "Status: Pass"),
            [],
        ),
        ([], None, ["L: contents is empty"]),
        ("text", None, ["L: contents is empty"]),
        ([user(FILE), "oops"], None, ["L: contents[1] is not an object"]),
        ([user(FILE)], None, ["L: the last turn must be the model's answer with text"]),
        ([user(FILE), model("  ")], None, ["L: the last turn must be the model's answer with text"]),
        (
            [user({"text": "x"}), model("Status: Pass")],
            None,
            ["L: 0 images in the user turns; an imported example needs exactly one image"],
        ),
        (
            [user(FILE, FILE), model("Status: Pass")],
            None,
            ["L: 2 images in the user turns; an imported example needs exactly one image"],
        ),
        (
            [
                user({"inlineData": {"data": "x"}}, FILE),
                model("Status: Pass"),
            ],  # a problem, whatever else the line says
            ("gs://bkt/data/img/a.png", "Pass", "None", "Status: Pass"),
            ["L: inline image data cannot be imported; use fileData with a gs:// URI"],
        ),
        (
            [user({"fileData": {"fileUri": "/tmp/a.png"}}), model("Status: Pass")],
            None,
            [
                "L: image '/tmp/a.png' is a local path; upload the dataset first (pipeline.uploads.upload_local_dataset or "
                "`python -m pipeline run --dataset PATH`)"
            ],
        ),
    ],
)
def test_conversation_record(turns, expected, problems):
    got, found = rules.conversation_record(turns, "L", "contents", source())
    assert found == problems
    if expected is None:
        assert got is None
    else:
        assert (got["gcs_uri"], got["status"], got["defect_type"], got["label"]) == expected


def test_csv_records_name_rows_and_skip_blank_ones():
    text = "gcs_uri,status,defect_type\na.png,Pass,\n,,\nb.png,Broken,\n/c.png,Defect,dent\n"
    records, problems = rules.csv_records(text, source())
    assert [(r["where"], r["gcs_uri"]) for r in records] == [("set.csv row 2", "gs://bkt/data/a.png")]
    assert problems == [
        "set.csv row 4: status 'Broken' is neither Pass nor Defect (Pass/OK/Good/Normal or Defect/NG/Fail/Bad)",
        "set.csv row 5: image '/c.png' is a local path; upload the dataset first "
        "(pipeline.uploads.upload_local_dataset or `python -m pipeline run --dataset PATH`)",
    ]
    with pytest.raises(ValueError, match=r"^gs://bkt/data/set.csv is empty: expected a header row$"):
        rules.csv_records("", source())


def test_jsonl_records_read_every_kind_of_line():
    lines = [
        "{not json",
        "[1]",
        "",
        json.dumps({"contents": [user(FILE), model(DENT)]}),
        json.dumps({"messages": [{"role": "user", "content": "gs://o/m.png"}, model("Status: Pass", "assistant")]}),
        json.dumps({"image": "flat.png", "label": "Status: Pass"}),
    ]
    records, problems, dropped = rules.jsonl_records("\n".join(lines), source("gs://bkt/data/train.jsonl"))
    assert [(r["where"], r["gcs_uri"], r["defect_type"]) for r in records] == [
        ("train.jsonl line 4", "gs://bkt/data/img/a.png", "Dent"),
        ("train.jsonl line 5", "gs://o/m.png", "None"),
        ("train.jsonl line 6", "gs://bkt/data/flat.png", "None"),
    ]
    assert problems == [
        "train.jsonl line 1: not valid JSON (Expecting property name enclosed in double quotes)",
        "train.jsonl line 2: expected a JSON object",
    ]
    assert dropped == 2


@pytest.mark.parametrize("object_path, prefix", [("parts", "parts/"), ("parts/", "parts/"), ("", ""), ("/", "")])
def test_folder_prefix(object_path, prefix):
    assert rules.folder_prefix(object_path) == prefix


def test_folder_records_classes_from_folders():
    listing = [
        ("p/pass/a.png", 10),
        ("p/Dent/b.jpg", 20),
        ("p/surface_dent/c.png", None),
        ("p/README.txt", 5),
        ("p/dent/.DS_Store", 1),
        ("p/.git/x.png", 1),
        ("p/pass/Thumbs.db", 1),
        ("p/defect/desktop.ini", 1),
        ("p/pass/", 0),
        ("p/9lives/d.png", 3),
        ("p/ng/sub/e.png", 4),
    ]
    records, problems, skipped = rules.folder_records(listing, source("gs://bkt/p/", label_template=""))
    assert [(r["gcs_uri"], r["status"], r["defect_type"], r["label"], r["size"], r["where"]) for r in records] == [
        ("gs://bkt/p/pass/a.png", "Pass", "None", "Status: Pass", 10, ""),
        ("gs://bkt/p/Dent/b.jpg", "Defect", "Dent", DENT, 20, ""),
        (
            "gs://bkt/p/surface_dent/c.png",
            "Defect",
            "Surface-Dent",
            "Status: Defect - Surface-Dent detected on product surface.",
            None,
            "",
        ),
        ("gs://bkt/p/ng/sub/e.png", "Defect", "Defect", "Status: Defect", 4, ""),
    ]
    assert problems == ["image gs://bkt/p/9lives/d.png: class folder '9lives' must start with a letter"]
    assert skipped == ["README.txt"]


@pytest.mark.parametrize(
    "skipped, note",
    [
        (["a"], "note: skipped 1 file(s) directly under gs://b/p/ (not in a class folder): a"),
        (
            [str(i) for i in range(7)],
            "note: skipped 7 file(s) directly under gs://b/p/ (not in a class folder): 0, 1, 2, 3, 4 ...",
        ),
    ],
)
def test_skipped_files_note(skipped, note):
    assert rules.skipped_files_note(skipped, "gs://b/p/") == note


def test_empty_folder_message():
    assert rules.empty_folder_message(source("gs://bkt/p")) == (
        "no images found under gs://bkt/p/; expected gs://bkt/p/<class>/<image>, e.g. pass/img1.png and dent/img2.png"
    )


def test_drop_repeated_rows_keeps_the_first():
    a, b = record("gs://b/a.png", "row 2"), record("gs://b/a.png", "row 3", "Defect", "Dent", DENT)
    again = record("gs://b/a.png", "row 4")
    assert rules.drop_repeated_rows([a, b, again]) == ([a, b], 1)


@pytest.mark.parametrize("count, tail", [(1, "written:\n  p0"), (25, "\n  p24"), (27, "\n  p24\n  ... and 2 more")])
def test_failure_message(count, tail):
    message = rules.failure_message([f"p{i}" for i in range(count)], "checking the images", "gs://b/x.csv")
    assert message.startswith(
        f"import_dataset: {count} problem(s) checking the images in gs://b/x.csv; no manifest was written:\n  p0"
    )
    assert message.endswith(tail)


# ---- image checks


@pytest.mark.parametrize("where, ref", [("x.csv row 3", "x.csv row 3: image gs://b/a.png"), ("", "image gs://b/a.png")])
def test_image_ref(where, ref):
    assert rules.image_ref(record(where=where, uri="gs://b/a.png")) == ref


@pytest.mark.parametrize(
    "uri, problem",
    [
        *[(f"gs://b/x.{ext}", None) for ext in ("png", "PNG", "jpg", "jpeg", "webp", "heic", "HEIF")],
        (
            "gs://b/anim.gif",
            "image gs://b/anim.gif has an unsupported format ('.gif'); Gemini accepts PNG, JPEG, WebP "
            "and HEIC/HEIF (.png, .jpg, .jpeg, .webp, .heic, .heif)",
        ),
        (
            "gs://b/noext",
            "image gs://b/noext has an unsupported format (no file extension); Gemini accepts PNG, JPEG, "
            "WebP and HEIC/HEIF (.png, .jpg, .jpeg, .webp, .heic, .heif)",
        ),
    ],
)
def test_image_name_problem(uri, problem):
    assert rules.image_name_problem(record(where="", uri=uri)) == problem


@pytest.mark.parametrize(
    "size, problem",
    [
        (None, None),
        (0, None),
        (20 * 2**20, None),
        (20 * 2**20 + 1, "image gs://b/a.png is 20.0 MB; Vertex AI accepts at most 20 MB per image"),
        (31 * 2**20, "image gs://b/a.png is 31.0 MB; Vertex AI accepts at most 20 MB per image"),
    ],
)
def test_image_size_problem(size, problem):
    assert rules.image_size_problem(record(where="", uri="gs://b/a.png"), size) == problem


@pytest.mark.parametrize(
    "extension, expected",
    [
        ("png", "PNG"),
        ("jpg", "JPEG"),
        ("jpeg", "JPEG"),
        ("webp", "WEBP"),
        ("heic", None),
        ("heif", None),
        ("gif", None),
    ],
)
def test_pillow_format_of(extension, expected):
    assert rules.pillow_format_of(extension) == expected


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(50)


@pytest.mark.parametrize(
    "name, data, problem",
    [
        ("a.png", image_bytes("PNG"), None),
        ("a.JPG", image_bytes("JPEG"), None),
        ("a.jpeg", image_bytes("JPEG", (400, 300)), None),
        ("a.webp", image_bytes("WEBP"), None),
        ("a.heic", HEIC, None),
        ("a.png", b"", "image gs://b/a.png is empty (0 bytes)"),
        ("a.png", b"\0" * (20 * 2**20 + 1), "image gs://b/a.png is 20.0 MB; Vertex AI accepts at most 20 MB per image"),
        ("a.heif", b"definitely not ISO-BMFF", "image gs://b/a.heif is not a HEIC/HEIF file (no ftyp header)"),
        (
            "a.png",
            image_bytes("BMP"),
            "image gs://b/a.png is a BMP file but named .png; Gemini accepts PNG, JPEG, WebP "
            "and HEIC/HEIF, and the file type must match the extension",
        ),
        (
            "a.jpg",
            image_bytes("PNG"),
            "image gs://b/a.jpg is a PNG file but named .jpg; Gemini accepts PNG, JPEG, WebP "
            "and HEIC/HEIF, and the file type must match the extension",
        ),
        ("a.png", b"\x89PNG\r\n\x1a\n not really", "image gs://b/a.png is unreadable: Pillow cannot decode it ("),
        ("a.png", image_bytes("PNG")[:60], "image gs://b/a.png is unreadable: Pillow cannot decode it ("),
    ],
)
def test_image_content_problem(name, data, problem):
    got = rules.image_content_problem(record(where="", uri=f"gs://b/{name}"), data)
    if problem and problem.endswith("("):
        assert got.startswith(problem) and got.endswith(")")
    else:
        assert got == problem


def test_image_digest():
    data = image_bytes()
    assert rules.image_digest(record(), data) == (hashlib.sha256(data).hexdigest(), None)
    assert rules.image_digest(record(where=""), b"") == (None, "image gs://bkt/a.png is empty (0 bytes)")


# ---- class checks, warnings and notes


def test_content_conflicts_name_both_images_once_per_content():
    digest = "ab" * 32
    records = [
        record("gs://b/1.png", "row 2", sha256=digest),
        record("gs://b/2.png", "row 3", sha256=digest),
        record("gs://b/3.png", "row 4", "Defect", "Dent", DENT, sha256=digest),
        record("gs://b/4.png", "row 5", "Defect", "Burr", "x", sha256=digest),
        record("gs://b/5.png", "row 6", sha256="cd" * 32),
    ]
    problems, copies = rules.content_conflicts(records)
    assert problems == [
        "row 2: image gs://b/1.png and row 4: image gs://b/3.png have the same content "
        "(sha256 abababababab...) but the classes 'Pass' and 'Dent'"
    ]
    assert copies == 3


def test_small_class_problems_count_distinct_images():
    records = [record(f"gs://b/p{i}.png", "", sha256=str(i)) for i in range(2)]
    records += [record(f"gs://b/d{i}.png", "", "Defect", "Dent", DENT, sha256="same") for i in range(4)]
    records += [record("gs://b/burr.png", "row 9", "Defect", "Burr", "x", sha256="z")]
    assert rules.small_class_problems(records) == [
        "class 'Burr' has only 1 distinct image (row 9: image gs://b/burr.png); each class needs at least 2 to be "
        "split: add images or remove the class",
        "class 'Dent' has only 1 distinct image (image gs://b/d0.png; image gs://b/d1.png; image gs://b/d2.png); "
        "each class needs at least 2 to be split: add images or remove the class",
    ]


def test_class_counts_and_summary():
    records = [
        record(),
        record(),
        record(status="Defect", defect_type="Dent"),
        record(status="Defect", defect_type="Burr"),
        record(status="Defect", defect_type="Burr"),
    ]
    counts = rules.class_counts(records)
    assert list(counts.items()) == [("Pass", 2), ("Dent", 1), ("Burr", 2)]
    assert rules.class_summary(counts) == "Burr 2, Pass 2, Dent 1"


def records_of(classes, label_of=lambda c: LABELS.get(c, f"Status: Defect - {c} x."), ext="png"):
    """{class: count} -> records with that many images per class."""
    return [
        record(
            f"gs://b/{c}{i}.{ext}",
            "",
            "Pass" if c == "Pass" else "Defect",
            "None" if c == "Pass" else c,
            "Status: Pass" if c == "Pass" else label_of(c),
        )
        for c, n in classes.items()
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "records, notes, expected",
    [
        (
            records_of({"Pass": 12, "Dent": 12}),
            {},
            ["imported 24 images in 2 classes from gs://b/p/ (folder): Dent 12, Pass 12"],
        ),
        (
            records_of({"Pass": 12}),
            {},
            [
                "imported 12 images in 1 classes from gs://b/p/ (folder): Pass 12",
                "warning: only one class (Pass); the inspector cannot learn to tell classes apart",
            ],
        ),
        (
            records_of({"Pass": 12, "Dent": 2}),
            {},
            [
                "imported 14 images in 2 classes from gs://b/p/ (folder): Pass 12, Dent 2",
                "warning: the classes are imbalanced (Pass 12, Dent 2; largest/smallest = 6.0 > 5); consider the "
                "oversample_rare_classes=True pipeline parameter or more images of the rare classes",
                "note: Dent has fewer than 10 images; with an 80/10/10 split such a class may get no validation or test "
                "example",
            ],
        ),
        (
            records_of({"Pass": 3, "Dent": 3}, label_of=lambda c: "Status: Defect"),
            {"duplicate_rows": 2, "duplicate_images": 1, "prompt_dropped": 6},
            [
                "imported 6 images in 2 classes from gs://b/p/ (folder): Dent 3, Pass 3",
                "note: Dent, Pass have fewer than 10 images; with an 80/10/10 split such a class may get no validation or "
                "test example",
                "note: dropped 2 repeated row(s) (same image, same label)",
                "note: 1 image(s) repeat the content of another image; the split keeps copies together",
                "note: 3 defect label(s) name no type as 'Defect - <Type>'; the evaluation scores their status only",
                "note: prompts and system instructions in the file are replaced by the pipeline's prompt and "
                "system_instruction parameters",
            ],
        ),
        (
            records_of({"Pass": 10, "Crack": 10}, ext="HEIC"),
            {},
            [
                "imported 20 images in 2 classes from gs://b/p/ (folder): Crack 10, Pass 10",
                "note: 20 HEIC/HEIF image(s) were checked by extension, size and header only (Pillow cannot decode them)",
            ],
        ),
    ],
)
def test_import_report(records, notes, expected):
    assert rules.import_report(records, "folder", "gs://b/p/", 5.0, notes) == expected


def test_manifest_row_and_metadata():
    r = record("gs://b/dir/a.png", "row 2", "Defect", "Dent", DENT, sha256="f" * 64)
    row = rules.manifest_row(r)
    assert list(row) == manifest_columns()
    assert row == {
        "image_name": "a.png",
        "gcs_uri": "gs://b/dir/a.png",
        "status": "Defect",
        "defect_type": "Dent",
        "label": DENT,
        "sha256": "f" * 64,
    }
    assert rules.manifest_metadata([r, record(sha256="0")], "csv", "gs://b/x.csv") == {
        "num_images": 2,
        "num_defects": 1,
        "class_counts": {"Dent": 1, "Pass": 1},
        "layout": "csv",
        "dataset_uri": "gs://b/x.csv",
    }


# ---- tuning examples


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"gcs_uri": "gs://b/a.png", "label": "Status: Pass"}], None),
        ([], None),
        (
            [{"gcs_uri": "gs://b/a.png", "label": "x"}, {"gcs_uri": "b/a.png", "label": "x"}],
            "test manifest line 3: needs a gs:// gcs_uri and a non-empty label, got 'b/a.png' and 'x'",
        ),
        (
            [{"gcs_uri": "gs://b/a.png", "label": "  "}],
            "test manifest line 2: needs a gs:// gcs_uri and a non-empty label, got 'gs://b/a.png' and '  '",
        ),
        ([{"label": "x"}], "test manifest line 2: needs a gs:// gcs_uri and a non-empty label, got None and 'x'"),
    ],
)
def test_check_split_rows(rows, message):
    if message is None:
        assert rules.check_split_rows(rows, "test") is rows
    else:
        with pytest.raises(ValueError) as caught:
            rules.check_split_rows(rows, "test")
        assert str(caught.value) == message


@pytest.mark.parametrize(
    "labels, expected",
    [
        ("AAAB", {"A": 3, "B": 3}),
        ("AAAAABB", {"A": 5, "B": 5}),  # 3 copies of each B, trimmed back to 5
        ("AB", {"A": 1, "B": 1}),
        ("AAAABBC", {"A": 4, "B": 4, "C": 4}),
    ],
)
def test_oversample_rows(labels, expected):
    rows = [{"label": label, "n": i} for i, label in enumerate(labels)]
    out = rules.oversample_rows(rows)
    assert {label: sum(r["label"] == label for r in out) for label in expected} == expected
    assert all(r in rows for r in out)


@pytest.mark.parametrize(
    "uri, mime",
    [
        ("gs://b/a.png", "image/png"),
        ("gs://b/a.JPG", "image/jpeg"),
        ("gs://b/a.webp", "image/webp"),
        ("gs://b/a.heif", "image/heif"),
        ("gs://b/a.gif", "image/gif"),
    ],
)
def test_tuning_example(uri, mime):
    example = rules.tuning_example({"gcs_uri": uri, "label": f" {DENT} "}, PROMPT, " Be brief. ")
    assert example == {
        "contents": [
            {"role": "user", "parts": [{"text": PROMPT}, {"fileData": {"mimeType": mime, "fileUri": uri}}]},
            {"role": "model", "parts": [{"text": DENT}]},
        ],
        "systemInstruction": {"role": "system", "parts": [{"text": "Be brief."}]},
    }
    assert "systemInstruction" not in rules.tuning_example({"gcs_uri": uri, "label": DENT}, PROMPT, "  ")


def example_with(*turns):
    return {"contents": list(turns)}


def image_part(uri="gs://b/a.png", mime="image/png"):
    return {"fileData": {"mimeType": mime, "fileUri": uri}}


SIZES = {"gs://b/a.png": 100, "gs://b/big.png": 20 * 2**20 + 1}


@pytest.mark.parametrize(
    "example, problem",
    [
        (example_with(user({"text": "x"}, image_part()), model("y")), None),
        ({}, "no contents"),
        (example_with(model("y")), "contents[0].role is 'model'; roles must alternate user/model"),
        (example_with(user({"text": " "}), model("y")), "contents[0] has no non-empty text part"),
        (example_with(user({"text": "x"})), "the last turn must be the model's answer"),
        (
            example_with(user({"text": "x"}, *[image_part()] * 31), model("y")),
            "31 images; Vertex AI accepts at most 30 per example",
        ),
        (
            example_with(user({"text": "x"}, image_part("gs://b/a.gif", "image/gif")), model("y")),
            "gs://b/a.gif has the unsupported type image/gif; use PNG, JPEG, WebP or HEIC",
        ),
        (
            example_with(user({"text": "x"}, image_part("gs://b/gone.png")), model("y")),
            "gs://b/gone.png does not exist",
        ),
        (
            example_with(user({"text": "x"}, image_part("gs://b/big.png")), model("y")),
            "gs://b/big.png is 20.0 MB; Vertex AI accepts at most 20 MB per image",
        ),
    ],
)
def test_tuning_example_problem(example, problem):
    assert rules.tuning_example_problem(example, SIZES) == problem


def test_jsonl_texts_validate_every_line_and_name_the_first_problem():
    good = {"gcs_uri": "gs://b/a.png", "label": "Status: Pass"}
    texts = rules.jsonl_texts({"train": [good, good], "validation": [], "test": [good]}, PROMPT, "", SIZES)
    assert texts["validation"] == "" and texts["test"].count("\n") == 1
    assert [json.loads(line) for line in texts["train"].splitlines()] == [rules.tuning_example(good, PROMPT)] * 2
    with pytest.raises(ValueError, match=r"^test\.jsonl line 2: gs://b/gone\.png does not exist$"):
        rules.jsonl_texts(
            {"train": [good], "test": [good, {"gcs_uri": "gs://b/gone.png", "label": "x"}]}, PROMPT, "", SIZES
        )


def test_jsonl_folder_path_is_named_by_content():
    first = rules.jsonl_folder_path("/tuning/", {"train": "a\n", "test": ""})
    assert re.fullmatch(r"tuning/[0-9a-f]{16}", first)
    assert rules.jsonl_folder_path("tuning", {"train": "a\n", "test": ""}) == first
    assert rules.jsonl_folder_path("tuning", {"train": "b\n", "test": ""}) != first
