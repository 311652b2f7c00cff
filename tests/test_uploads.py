"""Dataset errors a user can act on (issue 35): they name the local files the user gave, not the
``gs://local-bucket/...`` copies, and one attempt lists every problem the checks can find (up
to a bound), instead of one check phase per ~30 s attempt.

Tiny images drawn with PIL; the session's local storage emulator (tests/conftest.py).
"""

import io
import json
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from google.cloud import storage
from kfp import dsl
from PIL import Image

from components import dataset_rules as rules
from components.import_dataset import import_dataset
from pipeline import offline
from pipeline.uploads import local_text, upload_local_dataset

PROJECT = "local-project"
BUCKET = "local-bucket"
_seed = iter(range(10**6))


def image_bytes(fmt="PNG"):
    rng = random.Random(1000 + next(_seed))
    image = Image.new("RGB", (5, 5), tuple(rng.randrange(256) for _ in range(3)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def save(path: Path, data: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes() if data is None else data)
    return path


def import_error(dataset_uri, tmp_path, **kwargs):
    manifest = dsl.Dataset(name="m", uri=str(tmp_path / "manifest.csv"), metadata={})
    with pytest.raises(ValueError) as caught:
        import_dataset.python_func(project=PROJECT, dataset_uri=dataset_uri, manifest=manifest, **kwargs)
    assert not (tmp_path / "manifest.csv").exists()
    return str(caught.value)


@pytest.fixture
def prefix():
    return f"datasets-errors/{uuid.uuid4().hex[:8]}"


# ---- URIs of the uploaded copies, written back as the user's files


def test_local_text_names_files_and_folders():
    names = {
        "gs://b/d/parts/": "/home/me/parts/",
        "gs://b/d/parts": "/home/me/parts",
        "gs://b/d/parts/ok/a.png": "/home/me/parts/ok/a.png",
        "gs://b/d/parts/ok/a.png.bak.png": "/home/me/parts/ok/a.png.bak.png",
    }
    text = (
        "import_dataset: 2 problem(s) found in gs://b/d/parts/; no manifest was written:\n"
        "  image gs://b/d/parts/ok/a.png is unreadable\n"
        "  image gs://b/d/parts/ok/a.png.bak.png is unreadable\n"
        "  image gs://b/d/parts/dent/moved.png (not uploaded by this run), gs://b/d/parts-2/x.png, gs://other/x.png"
    )
    assert local_text(text, names) == (
        "import_dataset: 2 problem(s) found in /home/me/parts/; no manifest was written:\n"
        "  image /home/me/parts/ok/a.png is unreadable\n"
        "  image /home/me/parts/ok/a.png.bak.png is unreadable\n"
        "  image /home/me/parts/dent/moved.png (not uploaded by this run), gs://b/d/parts-2/x.png, gs://other/x.png"
    )
    assert local_text("nothing to map", names) == "nothing to map"
    assert local_text("gs://b/d/parts/x.png", {}) == "gs://b/d/parts/x.png"


def test_upload_records_where_every_copy_came_from(local_stack, prefix, tmp_path):
    root = tmp_path / "my parts"
    for name in ("ok/0.png", "ok/1.png", "dent/0.png"):
        save(root / name)
    names: dict[str, str] = {}
    uri = upload_local_dataset(root, BUCKET, PROJECT, prefix=prefix, local_names=names)
    assert names[uri] == f"{root}/" and names[uri.rstrip("/")] == str(root)
    assert names[f"{uri}ok/1.png"] == str(root / "ok" / "1.png")

    save(tmp_path / "elsewhere" / "x.png")
    (tmp_path / "m.csv").write_text("file,class\nelsewhere/x.png,good\n")
    names = {}
    uri = upload_local_dataset(tmp_path / "m.csv", BUCKET, PROJECT, prefix=f"{prefix}/m", local_names=names)
    assert names[uri] == str(tmp_path / "m.csv")
    assert sorted(names.values()) == sorted([str(tmp_path / "m.csv"), str(tmp_path / "elsewhere" / "x.png")])


# ---- one pass: every check, then one error


def test_one_attempt_lists_the_problems_of_every_check(local_stack, prefix, tmp_path):
    """A row that cannot be read, an unreadable image, a class too small to split and one content
    under two classes: before, three attempts (reading, images, classes); now one error."""
    folder = tmp_path / "photos"
    same = image_bytes()
    for name in ("good/0.png", "good/1.png", "scratch/0.png", "scratch/1.png"):
        save(folder / name)
    save(folder / "good" / "copy.png", same)
    save(folder / "scratch" / "copy.png", same)
    save(folder / "broken.png", b"\x89PNG\r\n\x1a\n not a PNG")
    save(folder / "burr.png")
    rows = ["good/0.png,good", "good/1.png,good", "scratch/0.png,scratch", "scratch/1.png,scratch"]
    rows += ["good/copy.png,good", "scratch/copy.png,scratch", "broken.png,good", "burr.png,burr", "good/0.png,3mm"]
    (folder / "labels.csv").write_text("file,class\n" + "\n".join(rows) + "\n")
    names: dict[str, str] = {}
    uri = upload_local_dataset(folder / "labels.csv", BUCKET, PROJECT, prefix=prefix, local_names=names)

    message = import_error(uri, tmp_path)
    assert message.startswith(f"import_dataset: 4 problem(s) found in {uri}; no manifest was written:")
    for fragment in (
        "class 'Burr' has only 1 distinct image",  # a class check ...
        "labels.csv row 10: class '3mm' must start with a letter",  # ... a row ...
        "labels.csv row 8: image gs://",  # ... an image ...
        "broken.png is unreadable",
        "have the same content",  # ... and a content check, all at once
    ):
        assert fragment in message
    assert (
        "(not counting the rows or images left out by the problems below)" in message
    )  # a row is missing from the classes

    shown = local_text(message, names)  # what `run --dataset` prints
    assert "gs://" not in shown
    assert f"found in {folder / 'labels.csv'};" in shown
    assert f"labels.csv row 8: image {folder / 'broken.png'} is unreadable" in shown


def test_image_checks_stop_at_the_bound_and_say_how_many_were_not_checked(local_stack, prefix, tmp_path):
    bucket = storage.Client(PROJECT).bucket(BUCKET)
    bound = rules.problem_bound()
    for i in range(bound + 30):
        bucket.blob(f"{prefix}/good/{i:03d}.png").upload_from_string(b"not an image")
    for i in range(2):
        bucket.blob(f"{prefix}/dent/{i}.png").upload_from_string(image_bytes())
    message = import_error(f"gs://{BUCKET}/{prefix}/", tmp_path, download_workers=1)
    first = message.splitlines()[0]
    count = int(first.split("import_dataset: ")[1].split(" problem")[0])
    assert bound < count < bound + 30  # stopped soon after the bound, not at the end
    assert message.count(" is unreadable") == 24  # the message lists 25 (the note first), counts the rest
    assert message.rstrip().endswith("more")
    assert f"stopped after {bound} problems:" in message and "image(s) were not checked yet" in message


# ---- the terminal: offline's error of a failed import names the local files


def test_a_failed_import_shows_every_reason_with_local_names(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    reasons = [f"      image gs://local-bucket/datasets/parts/good/{i}.png is unreadable" for i in range(25)]
    (run_dir / "pipeline.log").write_text(
        "\n".join(
            [
                "Executing task 'import-dataset'",
                "    Traceback (most recent call last):",
                "    ValueError: import_dataset: 27 problem(s) found in gs://local-bucket/datasets/parts/; no manifest "
                "was written:",
                *reasons,
                "      ... and 2 more",
                "",
                "Task 'import-dataset' finished with status FAILURE",
            ]
        )
        + "\n"
    )
    names = {"gs://local-bucket/datasets/parts/": "/home/me/parts/"}
    result = offline._finish(run_dir, tmp_path, 1.0, 1, "import-dataset", "import-dataset", {}, names)
    lines = result.error.splitlines()
    assert lines[0] == "ValueError: import_dataset: 27 problem(s) found in /home/me/parts/; no manifest was written:"
    assert [line.strip() for line in lines[1:]] == [
        f"image /home/me/parts/good/{i}.png is unreadable" for i in range(25)
    ] + ["... and 2 more"]
    assert json.loads((run_dir / "result.json").read_text())["error"] == result.error


@pytest.mark.slow
def test_run_with_a_bad_folder_names_the_local_files_and_every_problem_on_the_terminal(tmp_path, monkeypatch):
    """The whole CLI: upload, pipeline, failed import, and the error the user reads."""
    root = tmp_path / "my photos"
    for name in ("good/0.png", "good/1.png", "scratch/0.png"):
        save(root / name)
    save(root / "good" / "2.png", b"\x89PNG\r\n\x1a\n not a PNG")
    save(root / "ground_truth" / "scratch" / "0_mask.png")
    (root / "good" / "notes.txt").write_text("sidecar")
    monkeypatch.setenv("PIPELINE_RUNS_DIR", str(tmp_path / "runs"))
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--dataset", str(root), "--data-dir", str(tmp_path / "lv")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert "skipped 1 mask(s) (masks are never trained on), 1 file(s) that are not images (.txt 1)" in said
    assert "failed in import-dataset" in said and "2 problem(s) found in" in said
    assert f"image {root / 'good' / '2.png'} is unreadable" in said
    assert "class 'Scratch' has only 1 distinct image" in said
    assert "gs://local-bucket" not in said.split("failed in import-dataset")[1]
