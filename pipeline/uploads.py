"""Bring your own images: upload a local labelled image set to Cloud Storage.

``upload_local_dataset`` copies a local folder tree (``<class>/<image>``) or a CSV/JSONL
manifest plus the images it references to a bucket, and returns the ``gs://`` URI to pass
as the pipeline's ``dataset_uri`` (read by ``components/import_dataset.py``). It talks to
Cloud Storage through ``google-cloud-storage``, so the same call uploads to a real bucket or,
with ``STORAGE_EMULATOR_HOST`` set, to the local storage emulator (``pipeline.offline``
does that for ``python -m pipeline run --dataset PATH``).

Local image paths in an uploaded manifest are rewritten to the ``gs://`` URIs of their
copies; ``gs://`` URIs are kept as they are. A folder's masks, sidecar, hidden and system
files are not uploaded (the import's own rule, ``components.dataset_rules.path_kind``), and
the user is told how many. ``local_names`` records where each copy came from, so that
``local_text`` can name the user's files in the import's errors.
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
import os
import re
from pathlib import Path
from typing import Any

from components import dataset_rules as rules
from components.manifests import image_mime_types

URI_COLUMNS = rules.image_uri_columns()  # the import's own lists: one rule, in one place
CSV_IMAGE_COLUMNS = URI_COLUMNS + rules.image_column_aliases()
CONTENT_TYPES = {
    **{f".{ext}": mime for ext, mime in image_mime_types().items()},
    ".csv": "text/csv",
    ".jsonl": "application/jsonl",
}
IMAGE_EXTENSIONS = tuple(f".{ext}" for ext in image_mime_types())


class DatasetUploadError(ValueError):
    """A local dataset that cannot be uploaded; the message names the file, row or line."""


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "dataset"


def _bucket_name(bucket: str) -> str:
    name = bucket.removeprefix("gs://").strip("/").split("/")[0]
    if not name:
        raise DatasetUploadError(f"bucket {bucket!r} names no bucket; expected e.g. gs://my-bucket")
    return name


class _Uploads:
    """Local files to copy, each to one object name (the same file is copied once)."""

    def __init__(self, prefix: str, root: Path) -> None:
        self.prefix, self.root = prefix, root
        self.objects: dict[Path, str] = {}

    def add(self, path: Path) -> str:
        path = path.resolve()
        if path not in self.objects:
            try:
                relative = path.relative_to(self.root).as_posix()
            except ValueError:  # outside the manifest's folder: keep it apart, by position
                relative = f"_external/{len(self.objects)}/{path.name}"
            self.objects[path] = f"{self.prefix}/{relative}"
        return self.objects[path]


def _local_image(value: str, base: Path, where: str) -> Path:
    path = Path(os.path.expanduser(value))
    path = path if path.is_absolute() else base / path
    # Only image files: a manifest from someone else must not copy ~/.config/... into a bucket.
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise DatasetUploadError(
            f"{where}: {value!r} is not an image file; image references must end in {', '.join(IMAGE_EXTENSIONS)}"
        )
    if not path.is_file():
        raise DatasetUploadError(f"{where}: image {value!r} not found (looked for {path})")
    return path


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetUploadError(
            f"{path.name}: not UTF-8 text (byte {error.start}); save it as UTF-8 (Excel: CSV UTF-8)"
        ) from None


def _is_remote(value: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value))


def _rewrite_csv(path: Path, uploads: _Uploads, bucket_name: str) -> str:
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    fields = reader.fieldnames or []
    _, problems = rules.csv_columns(fields, path.name)  # the import's header check, on the local file
    if problems:
        raise DatasetUploadError("\n".join(problems))
    lowered = {f.strip().lower(): f for f in fields if f}
    column = next(lowered[c] for c in CSV_IMAGE_COLUMNS if c in lowered)
    # A VisA split CSV names its images from the VisA root, the folder above split_csv/.
    base = Path(rules.manifest_base_dir(fields, path.parent.as_posix()))
    uploads.root = base.resolve()
    rows = []
    for number, row in enumerate(reader, start=2):  # row 1 is the header (rows with line breaks in quotes aside)
        if None in row:  # DictReader's key for fields beyond the header
            raise DatasetUploadError(
                f"{path.name} row {number}: {len(fields) + len(row[None])} fields, the header names {len(fields)}; "
                "quote values that contain commas"
            )
        value = (row.get(column) or "").strip()
        if value and not _is_remote(value):
            image = _local_image(value, base, f"{path.name} row {number}")
            row[column] = f"gs://{bucket_name}/{uploads.add(image)}"
        rows.append(row)
    if not rows:
        raise DatasetUploadError(f"{path.name} has a header but no rows")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _rewrite_json(node: Any, base: Path, uploads: _Uploads, bucket_name: str, where: str, key: str = "") -> Any:
    """Rewrites local image references anywhere in one JSONL object."""

    def upload(value: str) -> str:
        return f"gs://{bucket_name}/{uploads.add(_local_image(value, base, where))}"

    if isinstance(node, dict):
        return {k: _rewrite_json(v, base, uploads, bucket_name, where, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_json(v, base, uploads, bucket_name, where, key) for v in node]
    if not isinstance(node, str) or _is_remote(node):
        return node
    if key.lower() in {"fileuri", "file_uri", "url", "image_url", "imageurl", *URI_COLUMNS}:
        return upload(node) if node.strip() else node
    if key in ("content", "text"):  # chat text naming an image file ("see images/a.png")

        def replace(match: re.Match) -> str:
            token = match.group(0)
            candidate = Path(os.path.expanduser(token))
            candidate = candidate if candidate.is_absolute() else base / candidate
            return upload(token) if candidate.is_file() else token

        pattern = rf"(?<![\w/:.])[^\s\"'<>]+\.(?:{'|'.join(image_mime_types())})\b"
        return re.sub(pattern, replace, node, flags=re.IGNORECASE)
    return node


def _rewrite_jsonl(path: Path, uploads: _Uploads, bucket_name: str) -> str:
    lines = []
    # split("\n"), not splitlines(): U+2028 and other line separators may sit inside JSON strings.
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetUploadError(f"{path.name} line {number}: not valid JSON ({error.msg})") from None
        lines.append(json.dumps(_rewrite_json(obj, path.parent, uploads, bucket_name, f"{path.name} line {number}")))
    if not lines:
        raise DatasetUploadError(f"{path.name} is empty")
    return "\n".join(lines) + "\n"


def _folder_images(path: Path) -> list[tuple[Path, str]]:
    """The folder's images to upload, each with its name relative to the folder (the object
    name's tail). What the import would skip is not uploaded, and the user is told how much:
    masks, sidecar files (.txt, .json, ...), hidden and system files, files outside any class
    folder (components.dataset_rules.path_kind decides, as it does in the import)."""
    files = [(file, relative) for file, relative in _folder_files(path)]
    if all(rules.path_kind(relative)[0] == "system" for _, relative in files):
        raise DatasetUploadError(
            f"{path} is empty: expected class folders such as {path}/pass/ and {path}/dent/ holding images"
        )
    if not any("/" in relative for _, relative in files if rules.path_kind(relative)[0] != "system"):
        raise DatasetUploadError(
            f"{path} has no class folders: put each image in a folder named after its class, "
            f"e.g. {path}/pass/img1.png and {path}/dent/img2.png"
        )
    layout = rules.folder_layout(relative for _, relative in files)
    loose = [relative for _, relative in files if rules.path_kind(relative)[0] == "loose"]
    # Warnings come from the import, which reads the same layout: said once, on the terminal.
    notes = [line for line in rules.layout_notes(layout, str(path)) if not line.startswith("warning:")]
    for line in notes + ([rules.skipped_files_note(loose, str(path))] if loose else []):
        print(line, flush=True)
    images = [(file, relative) for file, relative in files if rules.path_kind(relative)[0] == "image"]
    if not images:
        raise DatasetUploadError(
            f"{path} holds no images in class folders: expected e.g. {path}/good/img1.png and {path}/dent/img2.png"
        )
    return images


def _folder_files(path: Path) -> list[tuple[Path, str]]:
    """The folder's files, each with its name relative to the folder (the object name's tail).

    Hidden folders are left out. Links are followed, to files and
    to class folders alike (a set assembled from links to other disks is common), and each
    keeps the name of the link, so its class is the folder the link sits in. A link back to
    a folder it lies in is not followed (its images are read once, from the folder itself).
    A folder that cannot be read stops the upload.
    """
    files: list[tuple[Path, str]] = []

    def unreadable(error: OSError) -> None:  # os.walk would skip the folder, and with it a class
        raise DatasetUploadError(f"could not read the folder {error.filename}: {error.strerror}")

    for directory, folders, names in os.walk(path, onerror=unreadable, followlinks=True):
        here = Path(directory)
        parts = here.relative_to(path).parts
        ancestors = {os.path.realpath(path.joinpath(*parts[:i])) for i in range(len(parts) + 1)}
        folders[:] = sorted(f for f in folders if not f.startswith(".") and os.path.realpath(here / f) not in ancestors)
        for name in sorted(names):
            file = here / name
            if file.is_symlink() and not file.exists():
                raise DatasetUploadError(
                    f"{file} is a link to {os.readlink(file)}, which does not exist: restore it or delete the link"
                )
            if file.is_file():
                files.append((file, file.relative_to(path).as_posix()))
    if not files:
        raise DatasetUploadError(
            f"{path} is empty: expected class folders such as {path}/pass/ and {path}/dent/ holding images"
        )
    return files


def _rewrite_manifest(path: Path, prefix: str, bucket_name: str) -> tuple[str, list[tuple[Path, str]]]:
    """A manifest's text with its local image paths rewritten to ``gs://`` URIs under
    ``prefix``, and the (local file, object name) pairs to upload."""
    rewrite = {".csv": _rewrite_csv, ".jsonl": _rewrite_jsonl}.get(path.suffix.lower())
    if rewrite is None:
        raise DatasetUploadError(f"{path} is neither a folder nor a .csv or .jsonl manifest")
    uploads = _Uploads(prefix, path.resolve().parent)
    text = rewrite(path, uploads, bucket_name)
    return text, sorted(uploads.objects.items(), key=lambda kv: kv[1])


UPLOAD_CHUNK = 512  # files per transfer_manager call: memory stays flat for any dataset size


def _upload_files(target, items: list[tuple[Path, str]], workers: int) -> None:
    """Uploads (local file, object name) pairs, ``workers`` at a time, with
    google-cloud-storage's transfer_manager (threads: one client and its connection pool,
    10 connections per host, so up to 10 workers reuse their connections). Each object gets
    the content type of its extension. The first failure is raised."""
    from google.cloud.storage import transfer_manager

    for start in range(0, len(items), UPLOAD_CHUNK):
        pairs = []
        for local, object_name in items[start : start + UPLOAD_CHUNK]:
            blob = target.blob(object_name)
            blob.content_type = CONTENT_TYPES.get(local.suffix.lower()) or mimetypes.guess_type(local.name)[0]
            pairs.append((str(local), blob))
        transfer_manager.upload_many(
            pairs, max_workers=max(1, workers), worker_type=transfer_manager.THREAD, raise_exception=True
        )


def _delete_stale(target, prefix: str, kept: set[str]) -> None:
    """Deletes the objects under ``prefix/`` that this folder no longer holds (after the
    upload, so a failed one leaves the previous copy): the import reads the whole prefix,
    and an image deleted, moved or renamed since an earlier upload must not come back."""
    stale = [blob for blob in target.list_blobs(prefix=f"{prefix}/") if blob.name not in kept]
    for blob in stale:
        blob.delete()
    if stale:
        print(f"removed {len(stale)} image(s) under gs://{target.name}/{prefix}/ that the folder no longer holds")


def local_text(text: str, local_names: dict[str, str]) -> str:
    """``text`` with every ``gs://`` URI of an uploaded copy written as the local file or folder
    it came from (``local_names`` as upload_local_dataset fills it): the user fixes the files
    they gave, and must not have to work out where a ``gs://local-bucket/...`` object came from.
    Longer URIs first, so that an image's own name wins over its folder's."""
    if not local_names or "gs://" not in text:
        return text
    by_length = sorted(local_names, key=len, reverse=True)
    # A file's URI must end where the URI in the text ends (a.png is not a.png.bak); a folder's,
    # ending in "/", may go on (an object named under it).
    files = "|".join(re.escape(uri) for uri in by_length if not uri.endswith("/"))
    folders = "|".join(re.escape(uri) for uri in by_length if uri.endswith("/"))
    pattern = "|".join(part for part in (files and f"(?:{files})(?![\\w.-])", folders) if part)
    return re.sub(pattern, lambda match: local_names[match.group(0)], text)


def upload_local_dataset(
    path: Path,
    bucket: str,
    project: str,
    prefix: str | None = None,
    workers: int = 8,
    local_names: dict[str, str] | None = None,
) -> str:
    """Uploads a local labelled image set and returns the ``dataset_uri`` for the pipeline.

    Args:
        path: a folder tree ``<class>/<image>`` (``pass``/``ok``/``good``/``normal`` for good
            products, any other folder name a defect type; MVTec AD, anomalib Folder and VisA
            folders too), or a ``.csv``/``.jsonl`` manifest
            whose image references are local paths (relative to the manifest) or ``gs://``
            URIs. A folder is mirrored (hidden files skipped, links followed, each image
            named by where it sits in the folder; objects under the prefix that the folder
            no longer holds are deleted after the upload); a manifest is copied
            with its local image paths rewritten to the ``gs://`` URIs of the uploaded copies.
        bucket: the bucket, ``my-bucket`` or ``gs://my-bucket``.
        project: Google Cloud project for the storage client.
        prefix: folder inside the bucket; default ``datasets/<name>`` (the folder's name or
            the manifest's stem).
        workers: parallel uploads (8 keep one client's 10 pooled connections busy).
        local_names: filled with {gs:// URI: local path} for every copy, the dataset's own URI
            and its folder, so that local_text can name local files in the import's messages.

    Returns:
        ``gs://bucket/prefix/`` for a folder, ``gs://bucket/prefix/<manifest name>`` for a
        manifest.

    Raises:
        FileNotFoundError: ``path`` or an image a manifest names does not exist.
        DatasetUploadError: an empty folder, a folder without class folders, a broken link, a manifest
            that is not UTF-8, without an image or class column or rows, with a row of extra fields,
            a reference that is not an image file, invalid JSONL, or an unreadable file or folder.
    """
    from google.cloud import storage

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset path {path} does not exist")
    bucket_name = _bucket_name(bucket)
    name = _slug(path.name if path.is_dir() else path.stem)
    prefix = (prefix or f"datasets/{name}").strip("/")
    if path.is_dir():
        manifest_text = None
        items = [(file, f"{prefix}/{relative}") for file, relative in _folder_images(path)]
    else:
        manifest_text, items = _rewrite_manifest(path, prefix, bucket_name)
    names = local_names if local_names is not None else {}
    # The path as the user gave it (made absolute), links and all: what they will look for.
    shown = Path(os.path.abspath(path))
    for file, object_name in items:
        names[f"gs://{bucket_name}/{object_name}"] = (
            str(shown / object_name[len(prefix) + 1 :]) if path.is_dir() else str(file)
        )

    client = storage.Client(project=project)
    target = client.bucket(bucket_name)
    if not target.exists():
        raise DatasetUploadError(f"bucket gs://{bucket_name} does not exist (project {project})")
    try:
        _upload_files(target, items, workers)
    except OSError as error:  # an unreadable local file (permissions, a disk error)
        raise DatasetUploadError(f"could not read {getattr(error, 'filename', None) or error}: {error}") from None
    if manifest_text is None:
        _delete_stale(target, prefix, {object_name for _, object_name in items})
        names[f"gs://{bucket_name}/{prefix}/"] = f"{shown}{os.sep}"
        names[f"gs://{bucket_name}/{prefix}"] = str(shown)
        return f"gs://{bucket_name}/{prefix}/"
    # The manifest goes last, so it never names an image not yet there.
    object_name = f"{prefix}/{path.name}"
    if any(object_name == o for _, o in items):
        object_name = f"{prefix}/{path.stem}.uploaded{path.suffix}"
    target.blob(object_name).upload_from_string(manifest_text, content_type=CONTENT_TYPES[path.suffix.lower()])
    names[f"gs://{bucket_name}/{object_name}"] = str(shown)
    return f"gs://{bucket_name}/{object_name}"
