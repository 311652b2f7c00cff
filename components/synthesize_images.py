"""Component 1: synthesize product images: the source notebook's look, or photo-like parts."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.drawing import draw_notebook_product, draw_photo_product, draw_product_image, gaussian_noise_image
from components.helpers import (
    manifest_columns,
    notebook_labels,
    parse_gcs_uri,
    report_progress,
    storage_client,
    write_empty_manifest,
    write_manifest,
)
from components.packages import BASE_IMAGE, IMAGE_PACKAGES


@dsl.component(
    base_image=BASE_IMAGE,
    packages_to_install=IMAGE_PACKAGES,
    install_kfp_package=False,
    additional_funcs=[
        draw_product_image,
        draw_notebook_product,
        draw_photo_product,
        gaussian_noise_image,
        notebook_labels,
        parse_gcs_uri,
        manifest_columns,
        report_progress,
        storage_client,
        write_manifest,
        write_empty_manifest,
    ],
)
def synthesize_images(
    project: str,
    bucket: str,
    manifest: Output[Dataset],
    num_images: int = 200,
    defect_ratio: float = 0.5,
    seed: int = 42,
    variation: str = "standard",
    image_folder: str = "images",
    upload_workers: int = 8,
    dataset_uri: str = "",
):
    """Draws varied product images, uploads them as PNGs and writes their manifest.

    Defective images are split evenly between Scratch, Crack and Discoloration; every
    image differs (position, size, shade, defect geometry, noise), and the whole set is
    a pure function of ``seed`` and ``variation`` (components/drawing.py).

    Args:
        project: Google Cloud project that owns the bucket.
        bucket: ``gs://`` URI of the bucket; images go to
            ``{bucket}/{image_folder}/{variation}-seed{seed}-n{num_images}-defects{defect_ratio}/``,
            a folder named by what determines its content, so a cached manifest of one
            parameter set never points at images another run drew.
        manifest: output CSV with image_name, gcs_uri, status, defect_type, label, sha256.
        num_images: number of images, at least 1.
        defect_ratio: share of defective images, in [0, 1].
        seed: random seed for classes and drawings.
        variation: "standard": the notebook's look (100 px, blue product, red scratch,
            white crack, green spot) with defects at any angle, of varied length and
            width; "strong": the same look with geometry and photometry shifted beyond
            standard's ranges (a set to score a model tuned on standard); "photo":
            photo-like parts of about 320 px (textured, lit, several shapes, small
            defects, benign marks on good parts, noise, blur, JPEG).
        image_folder: folder inside the bucket.
        upload_workers: parallel uploads (bounded to be kind to the API).
        dataset_uri: the pipeline's ``dataset_uri``; when set, the images are imported
            instead and this step writes an empty manifest (header only) and stops.
    """
    import collections
    import hashlib
    import io
    import random
    import time
    from concurrent.futures import ThreadPoolExecutor

    if dataset_uri.strip():
        write_empty_manifest(manifest.path, f"dataset_uri is set ({dataset_uri.strip()}): images are imported")
        manifest.metadata.update({"num_images": 0})
        return
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    if not 0.0 <= defect_ratio <= 1.0:
        raise ValueError(f"defect_ratio must be in [0, 1], got {defect_ratio}")
    if variation not in ("standard", "strong", "photo"):
        raise ValueError(f"variation must be 'standard', 'strong' or 'photo', got {variation!r}")
    bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
    folder = f"{image_folder.strip('/')}/{variation}-seed{seed}-n{num_images}-defects{defect_ratio:g}"
    labels = notebook_labels()
    defect_types = [t for t in labels if t]

    # Exactly balanced classes in a seeded order: "equally likely" without sampling noise.
    num_defects = round(num_images * defect_ratio)
    classes = [defect_types[i % len(defect_types)] for i in range(num_defects)]
    classes += [None] * (num_images - num_defects)
    random.Random(seed).shuffle(classes)

    seen = set()  # sha256 digests, 32 bytes each (3.2 MB at 100k images)

    def render(index, attempt):
        """PNG bytes and sha256 digest of image ``index`` (``attempt`` > 0: a redraw)."""
        image = draw_product_image(random.Random(f"{seed}:{index}:{attempt}"), classes[index], variation)
        buffer = io.BytesIO()
        # Level 1: 3x faster than the default 6 for 8 % more bytes (synthesis is CPU-bound).
        image.save(buffer, format="PNG", compress_level=1)
        data = buffer.getvalue()
        return data, hashlib.sha256(data).digest()

    workers = max(1, min(int(upload_workers), 64))
    client = storage_client(project)
    http = getattr(client, "_http", None)
    if workers > 10 and http is not None:  # requests keeps 10 connections per host by default
        from requests.adapters import HTTPAdapter

        for prefix in ("https://", "http://"):
            http.mount(prefix, HTTPAdapter(pool_connections=4, pool_maxsize=workers))
    target = client.bucket(bucket_name)

    def upload(index, data):
        target.blob(f"{folder}/product_image_{index}.png").upload_from_string(data, content_type="image/png")

    def draw_and_upload(index):
        data, digest = render(index, 0)
        upload(index, data)
        return digest

    def unique_digest(index, digest):
        """The image's digest once no earlier image has it; a duplicate (not expected: every
        image has its own noise) is redrawn and uploaded again here, in index order, so the
        set stays a pure function of the parameters."""
        for attempt in range(1, 10):
            if digest not in seen:
                seen.add(digest)
                return digest.hex()
            data, digest = render(index, attempt)
            upload(index, data)
        raise RuntimeError(f"could not draw a unique image for index {index}")

    def row(index, digest, started):
        defect_type = classes[index]
        name = f"product_image_{index}.png"
        if (index + 1) % max(1, num_images // 10) == 0 or index + 1 == num_images:
            report_progress(index + 1, num_images, "images", "uploaded", time.monotonic() - started)
        return {
            "image_name": name,
            "gcs_uri": f"gs://{bucket_name}/{folder}/{name}",
            "status": "Defect" if defect_type else "Pass",
            "defect_type": defect_type or "None",
            "label": labels[defect_type],
            "sha256": unique_digest(index, digest),
        }

    def rows():
        """The manifest rows, in order, each once its image is uploaded; raises on the first
        failure, so write_manifest keeps no manifest of a failed run.

        Worker threads draw, encode and upload whole images (drawing in this thread alone
        starved it of the GIL behind the upload threads). At most 4 x workers images are in
        flight, so memory stays flat for any num_images.
        """
        started, window = time.monotonic(), collections.deque()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            try:
                for index in range(num_images):
                    window.append(pool.submit(draw_and_upload, index))
                    if len(window) == 4 * workers:
                        yield row(index - len(window) + 1, window.popleft().result(), started)
                while window:
                    yield row(num_images - len(window), window.popleft().result(), started)
            except Exception as error:
                pool.shutdown(cancel_futures=True)
                raise RuntimeError(
                    f"drawing or uploading images to gs://{bucket_name}/{folder}/ failed: {error}"
                ) from error

    print(
        f"drawing and uploading {num_images} images to gs://{bucket_name}/{folder}/ ({workers} upload threads)",
        flush=True,
    )
    write_manifest(manifest.path, rows())
    manifest.metadata.update({"num_images": num_images, "num_defects": num_defects})
