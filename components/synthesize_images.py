"""Component 1: synthesize product images: the source notebook's look, or photo-like parts."""

from kfp.dsl import Dataset, Output

from components.clients import parse_gcs_uri, storage_client
from components.drawing import draw_product_image, drawing_variations
from components.labels import notebook_labels
from components.manifests import write_empty_manifest, write_manifest
from components.packages import BASE_IMAGE, IMAGE_PACKAGES
from components.progress import report_progress
from components.shipping import lightweight_component


def render_png(seed, index, attempt, defect_type, variation):
    """PNG bytes and sha256 digest of synthesized image ``index`` (``attempt`` > 0: a redraw).

    PNG compress level 1: 3x faster than the default 6 for 8 % more bytes.
    """
    import hashlib
    import io
    import random

    image = draw_product_image(random.Random(f"{seed}:{index}:{attempt}"), defect_type, variation)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).digest()


def draw_and_upload_images(
    job, project, bucket_name, folder, seed, variation, start, defect_types, threads, connections
):
    """Draws images ``start``, ``start`` + 1, ... (one per entry of ``defect_types``), uploads
    each to ``gs://bucket_name/folder/product_image_<index>.png`` with ``threads`` threads and
    returns their sha256 digests in order. Runs in a worker process or thread; each process
    makes one storage client per ``job`` (an id of the synthesis: a later one in the same
    process may see other credentials or another emulator), for ``connections`` threads at
    once. An error carries the object's name as a note."""
    from concurrent.futures import ThreadPoolExecutor

    kept = draw_and_upload_images.__dict__
    if kept.get("job") != job:
        kept["client"], kept["job"] = storage_client(project, connections=connections), job
    target = kept["client"].bucket(bucket_name)

    def one(k):
        name = f"{folder}/product_image_{start + k}.png"
        try:
            data, digest = render_png(seed, start + k, 0, defect_types[k], variation)
            target.blob(name).upload_from_string(data, content_type="image/png")
        except Exception as error:
            error.add_note(name)  # the note travels with the exception out of a worker process
            raise
        return digest

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(len(defect_types))))


def check_synthesis_parameters(num_images, defect_ratio, variation):
    """ValueError naming the first parameter out of range."""
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    if not 0.0 <= defect_ratio <= 1.0:
        raise ValueError(f"defect_ratio must be in [0, 1], got {defect_ratio}")
    if variation not in drawing_variations():
        raise ValueError(f"variation must be one of {', '.join(drawing_variations())}, got {variation!r}")


def balanced_classes(num_images, defect_ratio, seed, defect_types):
    """The defect type of every image (None: good), exactly balanced in a seeded order:
    "equally likely" without sampling noise."""
    import random

    num_defects = round(num_images * defect_ratio)
    classes = [defect_types[i % len(defect_types)] for i in range(num_defects)]
    classes += [None] * (num_images - num_defects)
    random.Random(seed).shuffle(classes)
    return classes


def usable_cores():
    """CPU cores for worker processes: on Linux only (Vertex AI's containers, Linux machines);
    elsewhere fork is unsafe with some system libraries (macOS), and threads do (1)."""
    import os
    import sys

    return len(os.sched_getaffinity(0)) if sys.platform.startswith("linux") else 1


def synthesis_plan(project, bucket, num_images, defect_ratio, seed, variation, image_folder, upload_workers, cores):
    """Everything that decides the synthesized set and how it is made, as a dict.

    Streaming: chunks of images are drawn, encoded and uploaded by worker processes, each
    with its own upload threads (the work is CPU-bound: in one process the GIL held it to
    ~470 images/s on 2 cores), while the component writes the manifest rows in order. Jobs
    under 1,000 images per core use threads instead. At most 2 chunks per lane are in
    flight, so memory stays flat for any num_images."""
    import os

    labels = notebook_labels()
    workers = max(1, min(int(upload_workers), 64))
    processes = max(1, min(cores, workers, num_images // 1000))
    lanes = max(2, processes)  # chunks in progress at once (two in threads: no gap between chunks)
    return {
        "project": project,
        "bucket_name": parse_gcs_uri(bucket.rstrip("/") + "/x")[0],
        "folder": f"{image_folder.strip('/')}/{variation}-seed{seed}-n{num_images}-defects{defect_ratio:g}",
        "seed": seed,
        "variation": variation,
        "labels": labels,
        "classes": balanced_classes(num_images, defect_ratio, seed, [t for t in labels if t]),
        "workers": workers,
        "processes": processes,
        "lanes": lanes,
        "threads": -(-workers // lanes),
        "chunk": 32,
        "job": os.urandom(8).hex(),
    }


def synthesis_pool(processes, lanes):
    """Threads for one process; else forked worker processes (they inherit the loaded code,
    a spawned one would import it again; no client or thread of the component exists yet)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if processes == 1:
        return ThreadPoolExecutor(lanes)
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"))


def uploaded_digests(plan):
    """(index, sha256 digest) of every image, in order, each once it is uploaded; raises on the
    first failure, naming the object (so write_manifest keeps no manifest of a failed run)."""
    import collections

    p, window, count = plan, collections.deque(), len(plan["classes"])
    with synthesis_pool(p["processes"], p["lanes"]) as executor:
        try:
            for start in range(0, count, p["chunk"]):
                kinds = p["classes"][start : start + p["chunk"]]
                task = (p["job"], p["project"], p["bucket_name"], p["folder"], p["seed"], p["variation"], start)
                task += (kinds, p["threads"], p["workers"])
                window.append((start, executor.submit(draw_and_upload_images, *task)))
                while len(window) > 2 * p["lanes"] or (window and start + p["chunk"] >= count):
                    first, future = window.popleft()
                    for k, digest in enumerate(future.result()):
                        yield first + k, digest
        except Exception as error:
            executor.shutdown(cancel_futures=True)
            where = ", ".join(getattr(error, "__notes__", ())) or f"gs://{p['bucket_name']}/{p['folder']}/"
            raise RuntimeError(f"drawing or uploading {where} failed: {error}") from error


def unique_digest(plan, seen, own_client, index, digest):
    """The image's digest (hex) once no earlier image has it (``seen``, updated); a duplicate
    (not expected: every image has its own noise) is redrawn and uploaded again here, in index
    order, so the set stays a pure function of the parameters. ``own_client``: a list holding
    the storage client for redraws, made on the first."""
    for attempt in range(1, 10):
        if digest not in seen:
            seen.add(digest)
            return digest.hex()
        data, digest = render_png(plan["seed"], index, attempt, plan["classes"][index], plan["variation"])
        own_client[:] = own_client or [storage_client(plan["project"])]
        blob = own_client[0].bucket(plan["bucket_name"]).blob(f"{plan['folder']}/product_image_{index}.png")
        blob.upload_from_string(data, content_type="image/png")
    raise RuntimeError(f"could not draw a unique image for index {index}")


def synthesized_row(plan, index, sha256):
    """The manifest row of image ``index``."""
    defect_type, name = plan["classes"][index], f"product_image_{index}.png"
    return {
        "image_name": name,
        "gcs_uri": f"gs://{plan['bucket_name']}/{plan['folder']}/{name}",
        "status": "Defect" if defect_type else "Pass",
        "defect_type": defect_type or "None",
        "label": plan["labels"][defect_type],
        "sha256": sha256,
    }


def synthesized_rows(plan):
    """The manifest rows, in order, each once its image is uploaded (and unique), with
    progress every tenth of the set."""
    import time

    started, seen, own_client, total = time.monotonic(), set(), [], len(plan["classes"])
    for index, digest in uploaded_digests(plan):
        if (index + 1) % max(1, total // 10) == 0 or index + 1 == total:
            report_progress(index + 1, total, "images", "uploaded", time.monotonic() - started)
        yield synthesized_row(plan, index, unique_digest(plan, seen, own_client, index, digest))


@lightweight_component(base_image=BASE_IMAGE, packages_to_install=IMAGE_PACKAGES, install_kfp_package=False)
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
    if dataset_uri.strip():
        write_empty_manifest(manifest.path, f"dataset_uri is set ({dataset_uri.strip()}): images are imported")
        manifest.metadata.update({"num_images": 0})
        return
    check_synthesis_parameters(num_images, defect_ratio, variation)
    plan = synthesis_plan(
        project, bucket, num_images, defect_ratio, seed, variation, image_folder, upload_workers, usable_cores()
    )
    print(
        f"drawing and uploading {num_images} images to gs://{plan['bucket_name']}/{plan['folder']}/ "
        f"({plan['processes']} process(es), {plan['lanes']} x {plan['threads']} upload threads)",
        flush=True,
    )
    write_manifest(manifest.path, synthesized_rows(plan))
    num_defects = sum(1 for defect_type in plan["classes"] if defect_type)
    manifest.metadata.update({"num_images": num_images, "num_defects": num_defects})
