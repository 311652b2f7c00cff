"""Dataset layouts QC teams already have (issue 33): MVTec AD, anomalib's Folder layout, VisA's
split CSV and a hand-made labels.csv, imported as what they are or refused saying why.

The rules are tested without a server; each layout is then drawn as a tiny folder (a few px per
image, with PIL), uploaded with pipeline.uploads and imported by import_dataset against the
session's local storage emulator (tests/conftest.py), as `run --dataset` and Vertex AI read it.
"""

import csv
import io
import random
import uuid
from pathlib import Path

import pytest
from google.cloud import storage
from kfp import dsl
from PIL import Image

from components import dataset_rules as rules
from components.import_dataset import import_dataset
from components.labels import LABELS
from pipeline.uploads import DatasetUploadError, upload_local_dataset

PROJECT = "local-project"
BUCKET = "local-bucket"
_seed = iter(range(10**6))


def image_bytes(fmt="PNG", size=(6, 6)):
    """A tiny image whose content differs on every call."""
    rng = random.Random(next(_seed))
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    image.putpixel((rng.randrange(size[0]), rng.randrange(size[1])), (rng.randrange(256), 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def draw(root: Path, files: dict[str, int], fmt="PNG") -> Path:
    """{folder: number of images} -> images <root>/<folder>/<i>.png (masks too: any image will do)."""
    for folder, count in files.items():
        for i in range(count):
            path = root / folder / f"{i:03d}{'_mask' if folder.startswith('ground_truth') else ''}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image_bytes(fmt))
    return root


def run_import(dataset_uri, tmp_path):
    manifest = dsl.Dataset(name="m", uri=str(tmp_path / f"manifest-{uuid.uuid4().hex[:6]}.csv"), metadata={})
    import_dataset.python_func(project=PROJECT, dataset_uri=dataset_uri, manifest=manifest)
    with open(manifest.path, newline="") as f:
        return list(csv.DictReader(f)), manifest


def import_error(dataset_uri, tmp_path):
    manifest = dsl.Dataset(name="m", uri=str(tmp_path / "refused.csv"), metadata={})
    with pytest.raises(ValueError) as caught:
        import_dataset.python_func(project=PROJECT, dataset_uri=dataset_uri, manifest=manifest)
    assert not Path(manifest.path).exists()
    return str(caught.value)


@pytest.fixture
def prefix():
    return f"layouts/{uuid.uuid4().hex[:8]}"


# ---- the rules: which files are images of which class, and what is skipped


@pytest.mark.parametrize(
    "relative, kind",
    [
        ("train/good/000.png", ("image", "good")),  # MVTec AD
        ("test/broken_large/000.png", ("image", "broken_large")),
        ("ground_truth/broken_large/000_mask.png", ("mask", "")),
        ("bottle/train/good/000.png", ("image", "good")),  # the MVTec root, one folder per category
        ("bottle/license.txt", ("sidecar", ".txt")),
        ("license.txt", ("loose", "")),
        ("good/000.png", ("image", "good")),  # anomalib Folder
        ("mask/crack/000.png", ("mask", "")),
        ("masks/000.png", ("mask", "")),
        ("normal_test/000.png", ("image", "normal")),  # a normal_test_dir
        ("crack/000_mask.png", ("mask", "")),
        ("candle/Data/Images/Anomaly/000.JPG", ("image", "Anomaly")),  # VisA's own folders
        ("candle/Data/Masks/Anomaly/000.png", ("mask", "")),
        ("candle/image_anno.csv", ("sidecar", ".csv")),
        ("train/000.png", ("image", None)),  # a split with no class folder
        ("val/Validation/000.png", ("image", None)),
        ("dent/test/000.png", ("image", "dent")),  # a class folder holding a split
        ("pass/batch1/000.png", ("image", "pass")),  # sub-folders take the top folder's class
        ("good/notes.json", ("sidecar", ".json")),
        ("good/README", ("image", "good")),  # no extension: checked, and refused naming it
        ("good/anim.gif", ("image", "good")),  # an image in a format Gemini refuses: checked, and refused
        ("good/.DS_Store", ("system", ".DS_Store")),
        ("good/Thumbs.db", ("system", "Thumbs.db")),
        (".git/x.png", ("system", "x.png")),
    ],
)
def test_path_kind(relative, kind):
    assert rules.path_kind(relative) == kind


@pytest.mark.parametrize(
    "relatives, kind",
    [
        (["train/good/0.png", "test/crack/0.png", "ground_truth/crack/0_mask.png"], "mvtec"),
        (["good/0.png", "crack/0.png", "mask/crack/0.png"], "anomalib"),
        (["normal/0.png", "abnormal/0.png"], "anomalib"),
        (["candle/Data/Images/Normal/0.JPG", "candle/Data/Images/Anomaly/0.JPG"], "visa"),
        (["ok/0.png", "dent/0.png"], "folders"),
    ],
)
def test_folder_layout_names_the_layout(relatives, kind):
    assert rules.folder_layout(relatives)["kind"] == kind


def test_layout_notes_count_what_is_skipped_and_warn_of_untyped_defects():
    layout = rules.folder_layout(
        [
            "train/good/0.png",
            "test/good/0.png",
            "test/scratch/0.png",
            "ground_truth/scratch/0_mask.png",
            "ground_truth/scratch/1_mask.png",
            "test/scratch/notes.txt",
            "train/good/meta.json",
            "train/good/Thumbs.db",
        ]
    )
    assert layout["masks"] == 2 and layout["sidecars"] == {".txt": 1, ".json": 1} and layout["system"] == 1
    notes = rules.layout_notes(layout, "/data/bottle")
    assert notes[0].startswith("note: /data/bottle read as MVTec AD")
    assert notes[0].endswith(
        "skipped 2 mask(s) (masks are never trained on), 2 file(s) that are not images (.json 1, .txt 1), "
        "1 hidden or system file(s) (.DS_Store, Thumbs.db, ...)"
    )
    assert "split folders (test/, train/) are layout, not classes" in notes[1]
    assert rules.layout_notes(rules.folder_layout(["ok/0.png", "dent/0.png"]), "x") == []  # nothing to say
    untyped = rules.layout_notes(rules.folder_layout(["normal/0.png", "abnormal/0.png"]), "x")
    assert untyped[-1].startswith("warning: abnormal/ name(s) no defect type: those images form one class 'Defect'")
    assert "one folder per defect type next to the good one" in untyped[-1]


def records(**counts):
    return [
        rules.image_record("", f"gs://b/{name}/{i}.png", *rules.class_of_word(name), "x")
        for name, n in counts.items()
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "layout, counts, fragments",
    [
        (
            {"kind": "mvtec", "name": "MVTec AD (...)"},
            {"good": 5},
            ["found only class Pass (5 images)", "layout seen: MVTec AD", "copy the category's test/<defect>/"],
        ),
        (
            {"kind": "folders", "name": "class folders (<class>/<image>)"},
            {"scratch": 2, "crack": 3},
            ["found only the classes Crack (3 images), Scratch (2 images)", "no Pass class", "good/, ok/ or pass/"],
        ),
        (
            {"kind": "visa_csv", "name": "VisA split CSV 1cls.csv"},
            {"anomaly": 4},
            ["found only class Defect (4 images)", "layout seen: VisA split CSV", "add rows with label normal"],
        ),
        (
            {"kind": "csv", "name": "CSV manifest labels.csv (columns file, class)"},
            {"ok": 4},
            ["layout seen: CSV manifest labels.csv", "add rows of defective products"],
        ),
    ],
)
def test_class_set_problem_names_the_layout_and_the_fix(layout, counts, fragments):
    message = rules.class_set_problem(records(**counts), layout)
    for fragment in fragments:
        assert fragment in message
    assert rules.class_set_problem(records(good=2, scratch=2), layout) is None


@pytest.mark.parametrize(
    "header, renames, problems",
    [
        (["file", "class"], {"file": "image"}, []),
        (["Filename", "label"], {"Filename": "image"}, []),
        (["gcs_uri", "file", "label"], {}, []),  # a real image column wins over an alias
        (["object", "split", "label", "image", "mask"], {}, []),  # VisA
        (
            ["picture", "kind"],
            {},
            [
                "l.csv: no image column (columns: picture, kind); name it one of gcs_uri, image_uri, uri, image, "
                "path, file, filename, file_name, filepath, file_path, image_path, img",
                "l.csv: no class column (columns: picture, kind); give a class column (good, scratch, ...), a label "
                "column (a class word or the full answer, e.g. 'Status: Pass') or status + defect_type columns",
            ],
        ),
    ],
)
def test_csv_columns(header, renames, problems):
    assert rules.csv_columns(header, "l.csv") == (renames, problems)


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"class": "good"}, ("Pass", "None", "Status: Pass")),
        ({"class": "OK"}, ("Pass", "None", "Status: Pass")),
        ({"class": "none"}, ("Pass", "None", "Status: Pass")),
        (
            {"class": "broken_large"},
            ("Defect", "Broken-Large", "Status: Defect - Broken-Large detected on product surface."),
        ),
        ({"class": "scratch"}, ("Defect", "Scratch", LABELS["Scratch"])),
        ({"class": "anomaly"}, ("Defect", "Defect", "Status: Defect")),
        ({"label": "normal"}, ("Pass", "None", "Status: Pass")),  # VisA's label column: a class word
        ({"label": "anomaly"}, ("Defect", "Defect", "Status: Defect")),
        ({"label": "crack"}, ("Defect", "Crack", LABELS["Crack"])),
        ({"class": "crack", "label": LABELS["Crack"]}, ("Defect", "Crack", LABELS["Crack"])),
        ({"label": "Status: Pass"}, ("Pass", "None", "Status: Pass")),  # a full answer stays one
    ],
)
def test_class_words_in_manifests_read_as_folder_names_are(row, expected):
    found, reason = rules.class_of_row(row, rules.dataset_source("gs://bkt/l.csv"))
    assert reason is None and found == expected


def test_a_class_word_that_disagrees_with_the_label_or_has_no_letter_is_a_problem():
    source = rules.dataset_source("gs://bkt/l.csv")
    assert rules.class_of_row({"class": "3mm"}, source) == (None, "class '3mm' must start with a letter")
    found, reason = rules.class_of_row({"class": "good", "label": LABELS["Crack"]}, source)
    assert found is None and "says Defect but the status column says Pass" in reason


def test_a_visa_split_csv_names_images_from_the_visa_root():
    visa = ["object", "split", "label", "image", "mask"]
    assert rules.manifest_base_dir(visa, "data/visa/split_csv") == "data/visa"
    assert rules.manifest_base_dir(visa, "data/visa") == "data/visa"  # moved next to the objects
    assert rules.manifest_base_dir(["image", "label"], "data/split_csv") == "data/split_csv"


# ---- each layout drawn as a tiny folder, uploaded and imported


def mvtec_category(root: Path) -> Path:
    """MVTec AD's layout for one category, with its text files, masks and a .DS_Store."""
    draw(root, {"train/good": 3, "test/good": 2, "test/broken_large": 2, "test/contamination": 2})
    draw(root, {"ground_truth/broken_large": 2, "ground_truth/contamination": 2})
    (root / "license.txt").write_text("CC BY-NC-SA 4.0")
    (root / "test" / "broken_large" / "notes.txt").write_text("sidecar")
    (root / "train" / "good" / ".DS_Store").write_bytes(b"\0")
    return root


def test_mvtec_ad_imports_good_as_pass_and_defect_folders_as_types(local_stack, prefix, tmp_path, capsys):
    root = mvtec_category(tmp_path / "bottle")
    dataset_uri = upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix)
    said = capsys.readouterr().out
    assert f"note: {root} read as MVTec AD" in said
    assert "skipped 4 mask(s) (masks are never trained on), 1 file(s) that are not images (.txt 1)" in said
    assert "1 hidden or system file(s)" in said and "skipped 1 file(s) directly under" in said
    assert "split folders (test/, train/) are layout, not classes" in said
    uploaded = sorted(
        b.name.removeprefix(f"{prefix}/") for b in storage.Client(PROJECT).bucket(BUCKET).list_blobs(prefix=prefix)
    )
    assert not [name for name in uploaded if "ground_truth" in name or not name.endswith(".png")]

    rows, manifest = run_import(dataset_uri, tmp_path)
    assert manifest.metadata["class_counts"] == {"Pass": 5, "Broken-Large": 2, "Contamination": 2}
    labels = {r["label"] for r in rows}
    assert labels == {
        "Status: Pass",
        "Status: Defect - Broken-Large detected on product surface.",
        "Status: Defect - Contamination detected on product surface.",
    }


def test_mvtec_ad_copied_to_the_bucket_as_is_skips_the_masks_and_says_so(local_stack, prefix, tmp_path, capsys):
    """On Vertex AI the folder is copied with gcloud: the import itself skips and counts."""
    root = mvtec_category(tmp_path / "bottle")
    bucket = storage.Client(PROJECT).bucket(BUCKET)
    for file in root.rglob("*"):
        if file.is_file():
            bucket.blob(f"{prefix}/{file.relative_to(root).as_posix()}").upload_from_filename(str(file))
    rows, manifest = run_import(f"gs://{BUCKET}/{prefix}/", tmp_path)
    assert manifest.metadata["class_counts"] == {"Pass": 5, "Broken-Large": 2, "Contamination": 2}
    out = capsys.readouterr().out
    assert f"note: gs://{BUCKET}/{prefix}/ read as MVTec AD" in out
    assert "skipped 4 mask(s)" in out and "(.txt 1)" in out and "1 hidden or system file(s)" in out
    assert not [r for r in rows if "ground_truth" in r["gcs_uri"]]


def test_mvtec_ad_with_good_parts_only_is_refused_naming_the_layout_and_the_fix(local_stack, prefix, tmp_path):
    root = draw(tmp_path / "screw", {"train/good": 3, "test/good": 2})
    message = import_error(upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix), tmp_path)
    assert "found only class Pass (5 images)" in message
    assert "layout seen: MVTec AD" in message and "copy the category's test/<defect>/ folders too" in message


def test_a_folder_of_splits_without_classes_is_refused_not_read_as_classes_train_and_test(
    local_stack, prefix, tmp_path
):
    """Before: classes Train and Test, trained without a word."""
    root = draw(tmp_path / "parts", {"train": 2, "test": 2})
    message = import_error(upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix), tmp_path)
    assert "4 problem(s)" in message
    assert f"image gs://{BUCKET}/{prefix}/train/000.png has no class folder: train/ holds splits" in message
    assert "(e.g. test/good/ and test/scratch/)" in message
    assert "Train" not in message and "Test" not in message


def test_anomalib_folder_with_defect_folders_and_masks(local_stack, prefix, tmp_path, capsys):
    """anomalib's hazelnut_toy: good, crack, colour, and mask/crack, mask/colour."""
    root = draw(tmp_path / "hazelnut_toy", {"good": 3, "crack": 2, "colour": 2, "mask/crack": 2, "mask/colour": 2})
    dataset_uri = upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix)
    assert (
        "read as anomalib Folder (normal, abnormal and mask directories); skipped 4 mask(s)" in capsys.readouterr().out
    )
    _, manifest = run_import(dataset_uri, tmp_path)
    assert manifest.metadata["class_counts"] == {"Colour": 2, "Crack": 2, "Pass": 3}


def test_anomalib_normal_and_abnormal_is_one_untyped_defect_class_with_a_warning(local_stack, prefix, tmp_path, capsys):
    """The inspector names the defect; an abnormal/ folder names none: one class "Defect",
    answered "Status: Defect", and a warning that says how to get types."""
    root = draw(tmp_path / "parts", {"normal": 3, "abnormal": 2, "normal_test": 2, "mask": 2})
    dataset_uri = upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix)
    capsys.readouterr()
    rows, manifest = run_import(dataset_uri, tmp_path)
    assert manifest.metadata["class_counts"] == {"Defect": 2, "Pass": 5}
    assert {r["label"] for r in rows if r["status"] == "Defect"} == {"Status: Defect"}
    assert "warning: abnormal/ name(s) no defect type" in capsys.readouterr().out


def visa_root(root: Path, extra_rows=()) -> Path:
    """VisA's layout: <object>/Data/Images/Normal|Anomaly, Data/Masks, and split_csv/1cls.csv."""
    draw(root, {"candle/Data/Images/Normal": 3, "candle/Data/Images/Anomaly": 2, "candle/Data/Masks/Anomaly": 2})
    for path in root.rglob("*.png"):  # VisA's images are .JPG, its masks .png
        if "Images" in path.parts:
            path.rename(path.with_suffix(".JPG")).write_bytes(image_bytes("JPEG"))
    lines = ["object,split,label,image,mask"]
    lines += [f"candle,train,normal,candle/Data/Images/Normal/{i:03d}.JPG," for i in range(3)]
    lines += [
        f"candle,test,anomaly,candle/Data/Images/Anomaly/{i:03d}.JPG,candle/Data/Masks/Anomaly/{i:03d}.png"
        for i in range(2)
    ]
    (root / "split_csv").mkdir()
    (root / "split_csv" / "1cls.csv").write_text("\n".join([*lines, *extra_rows]) + "\n")
    return root


def test_visa_split_csv(local_stack, prefix, tmp_path, capsys):
    root = visa_root(tmp_path / "VisA")
    dataset_uri = upload_local_dataset(root / "split_csv" / "1cls.csv", BUCKET, PROJECT, prefix=prefix)
    rows, manifest = run_import(dataset_uri, tmp_path)
    out = capsys.readouterr().out
    assert "read as VisA split CSV 1cls.csv" in out and "the split and mask columns are not used" in out
    assert "warning: VisA's split CSV names no defect type" in out
    assert manifest.metadata["class_counts"] == {"Pass": 3, "Defect": 2}
    assert {r["label"] for r in rows} == {"Status: Pass", "Status: Defect"}
    assert all("/candle/Data/Images/" in r["gcs_uri"] for r in rows)  # the masks column is not an image


def test_visa_copied_to_the_bucket_reads_paths_from_the_visa_root(local_stack, prefix, tmp_path):
    root = visa_root(tmp_path / "VisA")
    bucket = storage.Client(PROJECT).bucket(BUCKET)
    for file in root.rglob("*"):
        if file.is_file():
            bucket.blob(f"{prefix}/{file.relative_to(root).as_posix()}").upload_from_filename(str(file))
    rows, _ = run_import(f"gs://{BUCKET}/{prefix}/split_csv/1cls.csv", tmp_path)
    assert sorted(r["gcs_uri"].removeprefix(f"gs://{BUCKET}/{prefix}/") for r in rows)[0] == (
        "candle/Data/Images/Anomaly/000.JPG"
    )


def test_labels_csv_with_file_and_class_columns(local_stack, prefix, tmp_path):
    root = draw(tmp_path / "photos", {"imgs": 6})
    classes = ["good", "good", "scratch", "scratch", "broken_large", "broken_large"]
    (root / "labels.csv").write_text("file,class\n" + "".join(f"imgs/{i:03d}.png,{c}\n" for i, c in enumerate(classes)))
    rows, manifest = run_import(upload_local_dataset(root / "labels.csv", BUCKET, PROJECT, prefix=prefix), tmp_path)
    assert manifest.metadata["class_counts"] == {"Pass": 2, "Scratch": 2, "Broken-Large": 2}
    assert [r["label"] for r in rows][:3] == ["Status: Pass", "Status: Pass", LABELS["Scratch"]]


def test_a_csv_without_usable_columns_says_which_names_would_work(local_stack, prefix, tmp_path):
    root = draw(tmp_path / "photos", {"imgs": 2})
    (root / "labels.csv").write_text("picture,kind\nimgs/000.png,good\nimgs/001.png,scratch\n")
    with pytest.raises(DatasetUploadError) as caught:  # refused on the user's machine, before any upload
        upload_local_dataset(root / "labels.csv", BUCKET, PROJECT, prefix=prefix)
    assert "labels.csv: no image column (columns: picture, kind); name it one of gcs_uri" in str(caught.value)
    assert "labels.csv: no class column (columns: picture, kind); give a class column" in str(caught.value)
    bucket = storage.Client(PROJECT).bucket(BUCKET)  # the same check in the import (Vertex AI)
    bucket.blob(f"{prefix}/labels.csv").upload_from_string((root / "labels.csv").read_text())
    message = import_error(f"gs://{BUCKET}/{prefix}/labels.csv", tmp_path)
    assert "2 problem(s)" in message and "file, filename" in message and "give a class column" in message


def test_a_single_class_is_refused_naming_the_layout(local_stack, prefix, tmp_path):
    root = draw(tmp_path / "parts", {"good": 3})
    message = import_error(upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix), tmp_path)
    assert "found only class Pass (3 images)" in message and "layout seen: class folders" in message
    assert "add a folder per defect type next to the good one" in message
