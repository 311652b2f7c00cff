"""The image manifest every data step writes and reads: its columns, the image types
Gemini tuning accepts, and writing it whole or not at all.
"""


def image_mime_types():
    """The image formats Gemini tuning accepts: file extension (lower case, no dot) -> MIME type."""
    return {
        "png": "image/png",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "webp": "image/webp",
        "heic": "image/heic",
        "heif": "image/heif",
    }


def manifest_columns():
    """The image manifest's columns, in order, as every data step writes and reads them."""
    return ["image_name", "gcs_uri", "status", "defect_type", "label", "sha256"]


def write_manifest(path, rows):
    """Writes the manifest CSV whole or not at all (a full disk leaves no half manifest).

    The rows (dicts with manifest_columns()) go to ``path + ".partial"``, which is renamed
    over ``path`` only once complete; on any error it is removed and the error raised.
    """
    import csv
    import os

    partial = path + ".partial"
    try:
        with open(partial, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=manifest_columns())
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_empty_manifest(path, reason):
    """Writes a manifest with the header only: this image step stands aside (see split_manifest).

    The pipeline runs both image steps, synthesize_images and import_dataset, and the one
    that does not apply writes this; split_manifest takes the manifest that has rows. A
    static DAG needs no ``dsl.OneOf`` over artifacts, which Vertex AI does not document.
    """
    write_manifest(path, [])
    print(f"no images from this step: {reason}", flush=True)
