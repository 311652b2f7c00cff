"""Bring your own images: import_dataset's python_func and pipeline/uploads.py upload helper.

Real google-cloud-storage client against the local storage emulator (the session's LocalStack,
tests/conftest.py). Every layout goes through the manifest, then split_manifest and build_tuning_jsonl,
to check that the tuning JSONL carries the right labels; every bad input must fail naming the
row/line and reason, and leave no manifest behind.
"""

import csv
import io
import json
import os
import random
import uuid
from pathlib import Path

import pytest
from google.cloud import storage
from kfp import dsl
from PIL import Image

from components.build_tuning_jsonl import build_tuning_jsonl
from components.clients import parse_gcs_uri
from components.import_dataset import import_dataset
from components.labels import LABELS, PROMPT
from components.split_manifest import split_manifest
from pipeline.uploads import DatasetUploadError, upload_local_dataset

PROJECT = "local-project"
BUCKET = "local-bucket"
DENT = "Status: Defect - Dent detected on product surface."
BURR = "Status: Defect - Burr detected on product surface."


@pytest.fixture(scope="module")
def gcs(local_stack):
    """A handle on the bucket of the session's local stack (tests/conftest.py); each test uses its own prefix."""
    return storage.Client(project=PROJECT).bucket(BUCKET)


@pytest.fixture
def prefix():
    """A fresh folder in the bucket for each test."""
    return f"byo/{uuid.uuid4().hex[:8]}"


_counter = iter(range(10**6))


def image_bytes(fmt="PNG", size=(24, 24)):
    """A small image whose content differs on every call."""
    rng = random.Random(next(_counter))
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(12):
        image.putpixel((rng.randrange(size[0]), rng.randrange(size[1])), tuple(rng.randrange(256) for _ in range(3)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def put(bucket, name, data, content_type="application/octet-stream"):
    bucket.blob(name).upload_from_string(data, content_type=content_type)
    return f"gs://{BUCKET}/{name}"


def put_images(bucket, prefix, classes, fmt="PNG", ext="png"):
    """{class folder: count} -> {class folder: [gs:// URIs]} under prefix/<class>/."""
    return {
        cls: [put(bucket, f"{prefix}/{cls}/img_{i}.{ext}", image_bytes(fmt)) for i in range(n)]
        for cls, n in classes.items()
    }


def new_manifest(tmp_path):
    return dsl.Dataset(name="manifest", uri=str(tmp_path / "manifest.csv"), metadata={})


def run_import(dataset_uri, tmp_path, **kwargs):
    manifest = new_manifest(tmp_path)
    import_dataset.python_func(project=PROJECT, dataset_uri=dataset_uri, manifest=manifest, **kwargs)
    with open(manifest.path, newline="") as f:
        return list(csv.DictReader(f)), manifest


def import_fails(dataset_uri, tmp_path, *fragments, **kwargs):
    """Runs an import that must fail; checks the message and that no manifest was written."""
    manifest = new_manifest(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        import_dataset.python_func(project=PROJECT, dataset_uri=dataset_uri, manifest=manifest, **kwargs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not (tmp_path / "manifest.csv").exists() or (tmp_path / "manifest.csv").stat().st_size == 0
    return message


def tuning_labels(manifest, tmp_path, prefix):
    """split_manifest + build_tuning_jsonl on the manifest; {image URI: label} over all JSONL lines."""
    splits = {
        name: dsl.Dataset(name=name, uri=str(tmp_path / f"{name}.csv"), metadata={})
        for name in ("train", "validation", "test")
    }
    split_manifest.python_func(
        manifest=manifest,
        train_manifest=splits["train"],
        validation_manifest=splits["validation"],
        test_manifest=splits["test"],
        split_metrics=dsl.Metrics(name="s", uri=str(tmp_path / "split_metrics"), metadata={}),
    )
    uris = build_tuning_jsonl.python_func(
        project=PROJECT,
        bucket=f"gs://{BUCKET}",
        prompt=PROMPT,
        train_manifest=splits["train"],
        validation_manifest=splits["validation"],
        test_manifest=splits["test"],
        jsonl_metrics=dsl.Metrics(name="j", uri=str(tmp_path / "jsonl_metrics"), metadata={}),
        jsonl_folder=f"{prefix}/tuning",
    )
    labels = {}
    for uri in uris:
        if not uri:
            continue
        bucket, name = parse_gcs_uri(uri)
        for line in storage.Client(project=PROJECT).bucket(bucket).blob(name).download_as_text().splitlines():
            example = json.loads(line)
            image = example["contents"][0]["parts"][1]["fileData"]["fileUri"]
            labels[image] = example["contents"][1]["parts"][0]["text"]
    return labels


def check_manifest(rows):
    assert rows and list(rows[0]) == ["image_name", "gcs_uri", "status", "defect_type", "label", "sha256"]
    for row in rows:
        assert row["image_name"] == row["gcs_uri"].rsplit("/", 1)[1]
        assert len(row["sha256"]) == 64
        assert (row["status"] == "Pass") == (row["defect_type"] == "None")


# ---- each layout, through the manifest and the tuning JSONL


def test_csv_with_label_column_relative_and_absolute_uris(gcs, prefix, tmp_path, capsys):
    other = put(gcs, f"{prefix}/elsewhere/dent_x.jpg", image_bytes("JPEG"), "image/jpeg")
    rows = [(f"images/ok_{i}.png", "Status: Pass") for i in range(4)]
    rows += [(f"images/dent_{i}.png", "Status: Defect - Dent on the lid.") for i in range(3)]
    rows += [(other, "Status: Defect - Dent on the lid.")]
    rows += [(f"./images/scr_{i}.webp", LABELS["Scratch"]) for i in range(2)]
    for path, _ in rows:
        if not path.startswith("gs://"):
            fmt = "WEBP" if path.endswith(".webp") else "PNG"
            put(gcs, f"{prefix}/data/{path.removeprefix('./')}", image_bytes(fmt))
    text = "gcs_uri,label\n" + "".join(f"{p},{label}\n" for p, label in rows)
    uri = put(gcs, f"{prefix}/data/dataset.csv", text)

    manifest_rows, manifest = run_import(uri, tmp_path)
    check_manifest(manifest_rows)
    got = {r["gcs_uri"]: (r["status"], r["defect_type"], r["label"]) for r in manifest_rows}
    base = f"gs://{BUCKET}/{prefix}/data/"
    assert got[base + "images/ok_0.png"] == ("Pass", "None", "Status: Pass")
    assert got[base + "images/dent_2.png"] == ("Defect", "Dent", "Status: Defect - Dent on the lid.")
    assert got[other] == ("Defect", "Dent", "Status: Defect - Dent on the lid.")
    assert got[base + "images/scr_1.webp"] == ("Defect", "Scratch", LABELS["Scratch"])
    assert manifest.metadata["num_images"] == 10 and manifest.metadata["num_defects"] == 6
    out = capsys.readouterr().out
    assert "checked 10/10 images" in out and "checked 1/10 images" in out

    labels = tuning_labels(manifest, tmp_path, prefix)
    assert labels == {u: label for u, (_, _, label) in got.items()}


def test_csv_with_status_and_defect_type_default_labels(gcs, prefix, tmp_path):
    images = put_images(gcs, prefix, {"a": 3, "b": 2, "c": 2, "d": 2})
    status = {"a": ("Pass", "None"), "b": ("Defect", "scratch"), "c": ("DEFECT", "Crack"), "d": ("defect", "dent")}
    text = "image,status,defect_type\n" + "".join(
        f"{u},{status[cls][0]},{status[cls][1]}\n" for cls, uris in images.items() for u in uris
    )
    uri = put(gcs, f"{prefix}/manifest.csv", text)

    rows, manifest = run_import(uri, tmp_path)
    check_manifest(rows)
    by_uri = {r["gcs_uri"]: r for r in rows}
    expected = {
        "a": ("Pass", "None", LABELS[None]),
        "b": ("Defect", "Scratch", LABELS["Scratch"]),
        "c": ("Defect", "Crack", LABELS["Crack"]),
        "d": ("Defect", "Dent", DENT),
    }
    for cls, uris in images.items():
        for u in uris:
            assert (by_uri[u]["status"], by_uri[u]["defect_type"], by_uri[u]["label"]) == expected[cls]
    labels = tuning_labels(manifest, tmp_path, prefix)
    assert labels == {u: expected[cls][2] for cls, uris in images.items() for u in uris}


def test_label_template_and_pass_label_replace_the_defaults(gcs, prefix, tmp_path):
    images = put_images(gcs, prefix, {"OK": 2, "scratch": 2, "dent": 2})
    rows, _ = run_import(
        f"gs://{BUCKET}/{prefix}/",
        tmp_path,
        label_template="Status: Defect - {defect_type} found.",
        pass_label="Status: Pass.",
    )
    assert {r["label"] for r in rows} == {
        "Status: Pass.",
        "Status: Defect - Scratch found.",
        "Status: Defect - Dent found.",
    }
    assert len(rows) == sum(len(v) for v in images.values())


def test_folder_tree_pass_dent_burr(gcs, prefix, tmp_path, capsys):
    images = put_images(gcs, prefix, {"pass": 6, "dent": 3, "burr": 3})
    images["Good"] = [put(gcs, f"{prefix}/Good/extra.jpeg", image_bytes("JPEG"))]
    put(gcs, f"{prefix}/README.txt", b"not in a class folder: skipped")
    put(gcs, f"{prefix}/dent/.DS_Store", b"hidden: skipped")

    rows, manifest = run_import(f"gs://{BUCKET}/{prefix}", tmp_path)  # no trailing slash, no extension
    check_manifest(rows)
    expected = {"pass": LABELS[None], "Good": LABELS[None], "dent": DENT, "burr": BURR}
    assert {r["gcs_uri"]: r["label"] for r in rows} == {u: expected[c] for c, us in images.items() for u in us}
    assert {r["defect_type"] for r in rows} == {"None", "Dent", "Burr"}
    assert manifest.metadata["class_counts"] == {"Pass": 7, "Dent": 3, "Burr": 3}
    out = capsys.readouterr().out
    assert "skipped 1 file(s)" in out and "checked 13/13 images" in out

    labels = tuning_labels(manifest, tmp_path, prefix)
    assert labels == {r["gcs_uri"]: r["label"] for r in rows}


def test_gemini_contents_jsonl(gcs, prefix, tmp_path, capsys):
    answers = [LABELS[None]] * 3 + [LABELS["Crack"]] * 2 + ["Status: Defect - Burr (edge) at 3 o'clock."] * 2
    lines, expected = [], {}
    for i, answer in enumerate(answers):
        uri = put(gcs, f"{prefix}/img/{i}.png", image_bytes())
        expected[uri] = answer
        lines.append(
            {
                "systemInstruction": {"role": "system", "parts": [{"text": "Be brief."}]},
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {"text": "Inspect this."},
                            {"fileData": {"mimeType": "image/png", "fileUri" if i % 2 else "file_uri": uri}},
                        ],
                    },
                    {"role": "model", "parts": [{"text": answer}]},
                ],
            }
        )
    uri = put(gcs, f"{prefix}/train.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n")

    rows, manifest = run_import(uri, tmp_path)
    check_manifest(rows)
    assert {r["gcs_uri"]: r["label"] for r in rows} == expected
    assert {r["defect_type"] for r in rows} == {"None", "Crack", "Burr"}
    assert "replaced by the pipeline's prompt" in capsys.readouterr().out
    assert tuning_labels(manifest, tmp_path, prefix) == expected


def test_chat_messages_jsonl(gcs, prefix, tmp_path):
    answers = [LABELS[None]] * 2 + [LABELS["Discoloration"]] * 2 + [DENT] * 2
    lines, expected = [], {}
    for i, answer in enumerate(answers):
        name = f"{i}.jpg"
        uri = put(gcs, f"{prefix}/chat/img/{name}", image_bytes("JPEG"))
        expected[uri] = answer
        if i % 3 == 0:  # the image as a URI in the user's text
            user = {"role": "user", "content": f"Inspect {uri}."}
        elif i % 3 == 1:  # a fileData part, relative to the manifest
            user = {
                "role": "user",
                "content": [{"text": "Inspect."}, {"fileData": {"mimeType": "image/jpeg", "fileUri": f"img/{name}"}}],
            }
        else:  # an image_url part, and "assistant" for the model
            user = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}}]}
        model_role = "assistant" if i % 3 == 2 else "model"
        lines.append(
            {
                "messages": [
                    {"role": "system", "content": "You are a QC inspector."},
                    user,
                    {"role": model_role, "content": answer},
                ]
            }
        )
    uri = put(gcs, f"{prefix}/chat/data.jsonl", "\n".join(json.dumps(line) for line in lines))

    rows, manifest = run_import(uri, tmp_path)
    check_manifest(rows)
    assert {r["gcs_uri"]: r["label"] for r in rows} == expected
    assert tuning_labels(manifest, tmp_path, prefix) == expected


def test_heic_accepted_by_extension_and_header(gcs, prefix, tmp_path, capsys):
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)
    put(gcs, f"{prefix}/pass/a.heic", heic)
    put(gcs, f"{prefix}/pass/b.HEIF", heic + b"x")
    put_images(gcs, prefix, {"dent": 2})
    rows, _ = run_import(f"gs://{BUCKET}/{prefix}/", tmp_path)
    assert len(rows) == 4
    assert "2 HEIC/HEIF image(s) were checked by extension" in capsys.readouterr().out


def test_imbalance_warning_names_counts_and_oversampling(gcs, prefix, tmp_path, capsys):
    put_images(gcs, prefix, {"pass": 12, "dent": 2})
    run_import(f"gs://{BUCKET}/{prefix}/", tmp_path)
    out = capsys.readouterr().out
    assert "warning: the classes are imbalanced (Pass 12, Dent 2; largest/smallest = 6.0 > 5)" in out
    assert "oversample_rare_classes" in out


# ---- bad inputs: a clear message naming row/line and reason; no manifest


def csv_dataset(gcs, prefix, extra_rows):
    """A valid CSV (2 Pass, 2 Dent) plus extra rows; the first extra row is row 6."""
    images = put_images(gcs, prefix, {"pass": 2, "dent": 2})
    text = "gcs_uri,status,defect_type\n" + "".join(f"{u},Pass,None\n" for u in images["pass"])
    text += "".join(f"{u},Defect,Dent\n" for u in images["dent"]) + "".join(row + "\n" for row in extra_rows)
    return put(gcs, f"{prefix}/dataset.csv", text)


def test_missing_image(gcs, prefix, tmp_path):
    missing = f"gs://{BUCKET}/{prefix}/nope.png"
    uri = csv_dataset(gcs, prefix, [f"{missing},Pass,None"])
    import_fails(uri, tmp_path, f"dataset.csv row 6: image {missing} does not exist", "no manifest was written")


def test_unreadable_image(gcs, prefix, tmp_path):
    broken = put(gcs, f"{prefix}/broken.png", b"\x89PNG\r\n\x1a\n this is not really a PNG")
    uri = csv_dataset(gcs, prefix, [f"{broken},Defect,Dent"])
    import_fails(uri, tmp_path, f"dataset.csv row 6: image {broken} is unreadable")


def test_unsupported_format(gcs, prefix, tmp_path):
    gif = put(gcs, f"{prefix}/anim.gif", image_bytes("GIF"))
    bmp_named_png = put(gcs, f"{prefix}/bitmap.png", image_bytes("BMP"))
    uri = csv_dataset(gcs, prefix, [f"{gif},Pass,None", f"{bmp_named_png},Pass,None"])
    message = import_fails(
        uri,
        tmp_path,
        f"dataset.csv row 6: image {gif} has an unsupported format ('.gif')",
        "Gemini accepts PNG, JPEG, WebP and HEIC/HEIF",
        f"dataset.csv row 7: image {bmp_named_png} is a BMP file but named .png",
    )
    assert "2 problem(s)" in message


def test_fake_heic_is_rejected(gcs, prefix, tmp_path):
    fake = put(gcs, f"{prefix}/pass/fake.heic", b"definitely not an ISO-BMFF file")
    put_images(gcs, prefix, {"pass": 2, "dent": 2})
    import_fails(f"gs://{BUCKET}/{prefix}/", tmp_path, f"image {fake} is not a HEIC/HEIF file")


def test_image_over_20_mb(gcs, prefix, tmp_path):
    big = put(gcs, f"{prefix}/huge.png", b"\0" * (20 * 1024 * 1024 + 1))
    uri = csv_dataset(gcs, prefix, [f"{big},Pass,None"])
    import_fails(uri, tmp_path, f"dataset.csv row 6: image {big} is 20.0 MB; Vertex AI accepts at most 20 MB")


def test_class_with_one_example(gcs, prefix, tmp_path):
    lonely = put(gcs, f"{prefix}/burr.png", image_bytes())
    uri = csv_dataset(gcs, prefix, [f"{lonely},Defect,burr"])
    import_fails(
        uri,
        tmp_path,
        "class 'Burr' has only 1 distinct image",
        f"dataset.csv row 6: image {lonely}",
        "at least 2 to be split",
    )


def test_same_content_with_two_classes(gcs, prefix, tmp_path):
    data = image_bytes()
    a = put(gcs, f"{prefix}/copy_a.png", data)
    b = put(gcs, f"{prefix}/copy_b.png", data)
    uri = csv_dataset(gcs, prefix, [f"{a},Pass,None", f"{b},Defect,Dent"])
    import_fails(
        uri,
        tmp_path,
        f"dataset.csv row 6: image {a} and dataset.csv row 7: image {b} have the same content",
        "the classes 'Pass' and 'Dent'",
    )


def test_local_path_and_missing_label(gcs, prefix, tmp_path):
    uri = csv_dataset(gcs, prefix, ["/home/me/a.png,Pass,None", f"gs://{BUCKET}/x.png,Broken,"])
    import_fails(
        uri,
        tmp_path,
        "dataset.csv row 6: image '/home/me/a.png' is a local path",
        "dataset.csv row 7: status 'Broken' is neither Pass nor Defect",
    )


def test_bad_jsonl_lines(gcs, prefix, tmp_path):
    good = put(gcs, f"{prefix}/g.png", image_bytes())
    lines = [
        "{not json",
        json.dumps(
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"text": "Status: Pass"}]},
                ]
            }
        ),
        json.dumps({"messages": [{"role": "user", "content": f"look at {good}"}]}),
    ]
    uri = put(gcs, f"{prefix}/bad.jsonl", "\n".join(lines))
    import_fails(
        uri,
        tmp_path,
        "bad.jsonl line 1: not valid JSON",
        "bad.jsonl line 2: 0 images in the user turns",
        "bad.jsonl line 3: the last turn must be the model's answer",
    )


def test_bad_parameters_and_missing_dataset(gcs, prefix, tmp_path):
    import_fails(f"gs://{BUCKET}/{prefix}/none.csv", tmp_path, "does not exist")
    import_fails(f"gs://{BUCKET}/{prefix}/empty/", tmp_path, "no images found under")
    import_fails("/local/folder", tmp_path, "dataset_uri must be a gs:// URI")
    import_fails(f"gs://{BUCKET}/{prefix}/data.parquet", tmp_path, "give a .csv or .jsonl manifest or a folder")
    import_fails(
        f"gs://{BUCKET}/{prefix}/",
        tmp_path,
        "the only one allowed is {defect_type}",
        label_template="Status: Defect - {type}",
    )


# ---- pipeline/uploads.py: local -> (emulated) Cloud Storage -> import


def save(path, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(fmt))
    return path


def test_upload_local_folder_round_trip(gcs, prefix, tmp_path):
    root = tmp_path / "my parts"
    for cls, n in {"ok": 3, "dent": 2, "burr": 2}.items():
        for i in range(n):
            save(root / cls / f"{i}.png")
    (root / ".hidden").write_text("skip me")
    dataset_uri = upload_local_dataset(root, f"gs://{BUCKET}", PROJECT, prefix=prefix)
    assert dataset_uri == f"gs://{BUCKET}/{prefix}/"
    assert not gcs.blob(f"{prefix}/.hidden").exists()
    rows, _ = run_import(dataset_uri, tmp_path)
    assert sorted(r["gcs_uri"].removeprefix(dataset_uri) for r in rows) == [
        "burr/0.png",
        "burr/1.png",
        "dent/0.png",
        "dent/1.png",
        "ok/0.png",
        "ok/1.png",
        "ok/2.png",
    ]
    assert {r["label"] for r in rows} == {LABELS[None], DENT, BURR}

    default = upload_local_dataset(root, BUCKET, PROJECT)  # default prefix: datasets/<name>
    assert default == f"gs://{BUCKET}/datasets/my-parts/"


def test_upload_local_csv_and_jsonl_rewrite_paths(gcs, prefix, tmp_path):
    folder = tmp_path / "ds"
    outside = save(tmp_path / "outside" / "x.jpg", "JPEG")
    rows = [(f"imgs/p{i}.png", "Pass", "None") for i in range(2)] + [
        ("imgs/d0.png", "Defect", "Dent"),
        (str(outside), "Defect", "Dent"),
    ]
    for path, *_ in rows[:3]:
        save(folder / path)
    (folder / "labels.csv").write_text("path,status,defect_type\n" + "".join(",".join(r) + "\n" for r in rows))
    dataset_uri = upload_local_dataset(folder / "labels.csv", BUCKET, PROJECT, prefix=f"{prefix}/csv")
    assert dataset_uri == f"gs://{BUCKET}/{prefix}/csv/labels.csv"
    uploaded = gcs.blob(f"{prefix}/csv/labels.csv").download_as_text()
    assert f"gs://{BUCKET}/{prefix}/csv/imgs/p0.png" in uploaded and str(tmp_path) not in uploaded
    imported, _ = run_import(dataset_uri, tmp_path)
    assert [r["defect_type"] for r in imported] == ["None", "None", "Dent", "Dent"]

    lines = [
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"text": "Inspect."}, {"fileData": {"mimeType": "image/png", "fileUri": p}}],
                },
                {"role": "model", "content": LABELS[None] if s == "Pass" else DENT},
            ]
        }
        for p, s, _ in rows[:3]
    ]
    lines.append({"messages": [{"role": "user", "content": f"Inspect {outside}"}, {"role": "model", "content": DENT}]})
    (folder / "chat.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    dataset_uri = upload_local_dataset(folder / "chat.jsonl", BUCKET, PROJECT, prefix=f"{prefix}/chat")
    (tmp_path / "manifest.csv").unlink()
    imported, _ = run_import(dataset_uri, tmp_path)
    assert [r["label"] for r in imported] == [LABELS[None], LABELS[None], DENT, DENT]
    assert all(r["gcs_uri"].startswith(f"gs://{BUCKET}/{prefix}/chat/") for r in imported)


def test_upload_local_folder_mirrors_it(gcs, prefix, tmp_path, capsys):
    """An image deleted or moved since an earlier upload does not come back in the import."""
    root = tmp_path / "parts"
    for name in ("ok/0.png", "ok/1.png", "dent/0.png", "dent/1.png", "dent/2.png"):
        save(root / name)
    upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix)
    (root / "ok" / "1.png").unlink()
    (root / "dent" / "2.png").rename(root / "ok" / "2.png")  # a part re-judged as good
    dataset_uri = upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix)
    assert "removed 2 image(s)" in capsys.readouterr().out
    assert sorted(b.name.removeprefix(f"{prefix}/") for b in gcs.list_blobs(prefix=f"{prefix}/")) == [
        "dent/0.png",
        "dent/1.png",
        "ok/0.png",
        "ok/2.png",
    ]
    rows, _ = run_import(dataset_uri, tmp_path)  # before: "same content but classes Dent and Pass"
    assert sorted(r["label"] for r in rows) == sorted([DENT, DENT, LABELS[None], LABELS[None]])


def test_upload_local_folder_follows_links(gcs, prefix, tmp_path):
    """A set assembled from links: each image keeps the class of the folder its link sits in."""
    root = tmp_path / "parts"
    save(root / "ok" / "0.png")
    (root / "ok" / "1.png").symlink_to(save(tmp_path / "elsewhere" / "good.png"))  # before: class "External"
    dents = tmp_path / "other disk" / "dents"
    save(dents / "a.png")
    save(dents / "b.png")
    (dents / "back").symlink_to(root, target_is_directory=True)  # a loop: not followed
    (root / "dent").symlink_to(dents, target_is_directory=True)  # before: skipped without a word
    dataset_uri = upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix)
    assert sorted(b.name.removeprefix(f"{prefix}/") for b in gcs.list_blobs(prefix=f"{prefix}/")) == [
        "dent/a.png",
        "dent/b.png",
        "ok/0.png",
        "ok/1.png",
    ]
    rows, _ = run_import(dataset_uri, tmp_path)
    assert sorted(r["label"] for r in rows) == sorted([DENT, DENT, LABELS[None], LABELS[None]])

    (root / "ok" / "2.png").symlink_to(tmp_path / "unmounted" / "x.png")
    with pytest.raises(DatasetUploadError, match=r"ok/2.png is a link to .*unmounted/x.png, which does not exist"):
        upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix)


def test_upload_stops_at_a_folder_it_cannot_read(gcs, prefix, tmp_path, monkeypatch):
    """An unreadable class folder must not vanish from the set (os.walk skips it unless told)."""
    root = tmp_path / "parts"
    for name in ("ok/0.png", "ok/1.png", "dent/0.png"):
        save(root / name)
    listing = os.scandir

    def scandir(path="."):  # the operating system refusing one folder (tests run as root: chmod cannot)
        if Path(path).name == "dent":
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DatasetUploadError, match=r"could not read the folder .*parts/dent: Permission denied"):
        upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix)
    assert not list(gcs.list_blobs(prefix=f"{prefix}/"))


def test_upload_manifest_checks(gcs, prefix, tmp_path):
    (tmp_path / "secret.json").write_text('{"token": "x"}')
    save(tmp_path / "imgs" / "a.png")
    (tmp_path / "m.csv").write_text("image,label\nimgs/a.png,Status: Pass\nsecret.json,Status: Pass\n")
    with pytest.raises(DatasetUploadError, match=r"m.csv row 3: 'secret.json' is not an image file; .*\.png"):
        upload_local_dataset(tmp_path / "m.csv", BUCKET, PROJECT, prefix=prefix)
    assert not list(gcs.list_blobs(prefix=f"{prefix}/"))  # nothing copied, not even a.png
    (tmp_path / "m.csv").write_text("image,label\nimgs/a.png,Status: Pass,extra\n")
    with pytest.raises(DatasetUploadError, match="m.csv row 2: 3 fields, the header names 2; quote values"):
        upload_local_dataset(tmp_path / "m.csv", BUCKET, PROJECT, prefix=prefix)
    (tmp_path / "m.csv").write_bytes("image,label\nimgs/a.png,Status: Defect - Rayure \u00e0 droite\n".encode("cp1252"))
    with pytest.raises(DatasetUploadError, match=r"m.csv: not UTF-8 text \(byte \d+\); save it as UTF-8"):
        upload_local_dataset(tmp_path / "m.csv", BUCKET, PROJECT, prefix=prefix)
    # A line separator inside a JSON string is not the end of a JSONL line.
    line = {"image": "imgs/a.png", "label": "Status: Pass", "note": "checked\u2028twice"}
    (tmp_path / "m.jsonl").write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    dataset_uri = upload_local_dataset(tmp_path / "m.jsonl", BUCKET, PROJECT, prefix=prefix)
    assert json.loads(gcs.blob(dataset_uri.removeprefix(f"gs://{BUCKET}/")).download_as_text())["note"] == (
        "checked\u2028twice"
    )


def test_upload_errors(gcs, tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset path .*nowhere does not exist"):
        upload_local_dataset(tmp_path / "nowhere", BUCKET, PROJECT)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUploadError, match="is empty: expected class folders"):
        upload_local_dataset(tmp_path / "empty", BUCKET, PROJECT)
    save(tmp_path / "flat" / "a.png")
    with pytest.raises(DatasetUploadError, match="has no class folders"):
        upload_local_dataset(tmp_path / "flat", BUCKET, PROJECT)
    (tmp_path / "m.csv").write_text("image,label\nimgs/a.png,Status: Pass\nimgs/missing.png,Status: Pass\n")
    save(tmp_path / "imgs" / "a.png")
    with pytest.raises(DatasetUploadError, match=r"m.csv row 3: image 'imgs/missing.png' not found"):
        upload_local_dataset(tmp_path / "m.csv", BUCKET, PROJECT)


# ---- the program KFP ships: the component plus its additional_funcs, nothing else


def test_the_shipped_component_source_reads_every_layout(gcs, prefix, tmp_path):
    """Runs the very source KFP puts in the container, so a rule missing from additional_funcs fails here."""
    shipped = {}
    exec(compile(import_dataset.component_spec.implementation.container.command[-1], "shipped", "exec"), shipped)
    images = put_images(gcs, prefix, {"pass": 2, "dent": 2})
    status = {"pass": "Pass,", "dent": "Defect,dent"}
    csv_uri = put(
        gcs,
        f"{prefix}/m.csv",
        "gcs_uri,status,defect_type\n" + "".join(f"{u},{status[c]}\n" for c, us in images.items() for u in us),
    )
    jsonl_uri = put(
        gcs,
        f"{prefix}/m.jsonl",
        "\n".join(
            json.dumps(
                {
                    "contents": [
                        {
                            "role": "user",
                            "parts": [{"text": "x"}, {"fileData": {"mimeType": "image/png", "fileUri": u}}],
                        },
                        {"role": "model", "parts": [{"text": LABELS[None] if c == "pass" else DENT}]},
                    ]
                }
            )
            for c, us in images.items()
            for u in us
        ),
    )
    expected = {u: LABELS[None] if c == "pass" else DENT for c, us in images.items() for u in us}
    for number, uri in enumerate([f"gs://{BUCKET}/{prefix}/", csv_uri, jsonl_uri]):
        manifest = dsl.Dataset(name="m", uri=str(tmp_path / f"m{number}.csv"), metadata={})
        shipped["import_dataset"](project=PROJECT, dataset_uri=uri, manifest=manifest)
        with open(manifest.path, newline="") as f:
            rows = list(csv.DictReader(f))
        check_manifest(rows)
        assert {r["gcs_uri"]: r["label"] for r in rows} == expected
    gif = put(gcs, f"{prefix}/bad/a.gif", image_bytes("GIF"))
    bad = put(gcs, f"{prefix}/bad/m.csv", f"image,label\n{gif},Status: Pass\n")
    with pytest.raises(ValueError, match=r"(?s)3 problem\(s\) found in .*a\.gif has an unsupported format"):
        shipped["import_dataset"](project=PROJECT, dataset_uri=bad, manifest=new_manifest(tmp_path))
