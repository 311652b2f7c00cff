"""Benchmark of the pipeline at scale: uploads, synthesis + upload, evaluation, an offline run.

Prints figures against the targets of issue 13; it asserts nothing. From the repository root:
    python bench/bench_scale.py                     # upload alone and synthesis + upload at 1k and 10k
    python bench/bench_scale.py --sizes 1000,10000,100000        # adds 100k (about 10 minutes)
    python bench/bench_scale.py --eval 2000         # evaluate_inspector over 2,000 test images
    python bench/bench_scale.py --offline 20000 [--param train_fraction=0.01 ...]   # a whole offline run

Each measurement runs in its own process against a fresh Cloud Storage server (and, for
--eval, a fresh local Vertex AI in another process, as `make serve` runs it), so peak RSS is
that of the work measured alone. Per-image cost is reported per tenth of the run: flat
means the first and the last tenth cost the same. The load average is printed with each
figure: on a shared 2-core machine other work changes every figure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

PROJECT, LOCATION, BUCKET = "local-project", "us-central1", "local-bucket"


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def peak_rss_mb(worker_processes: int = 0) -> float:
    """This process's peak RSS plus, per worker process it ran, the largest child's (an upper
    bound of their sum: the kernel reports only the largest)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + worker_processes * child) / 1024  # kB on Linux


def process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def worker_pid(server_pid: int) -> int | None:
    """The prediction process of a `localvertex serve` (started on its first request)."""
    for task in Path(f"/proc/{server_pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            if "prediction_worker" in Path(f"/proc/{child}/cmdline").read_text():
                return int(child)
    return None


def tenths(marks: list[tuple[int, float]], total: int) -> list[float]:
    """ms per image in each tenth of the run, from (images done, seconds) marks."""
    out, last_n, last_t = [], 0, 0.0
    for n, t in marks:
        if n > last_n:
            out.append((t - last_t) / (n - last_n) * 1000)
            last_n, last_t = n, t
    return out


# --------------------------------------------------------------------------- children


def child_upload(count: int, workers: int) -> dict:
    """Upload alone: ``count`` objects of a drawn PNG's size through google-cloud-storage."""
    from concurrent.futures import ThreadPoolExecutor

    from google.cloud import storage

    from components.drawing import draw_product_image

    buffer = io.BytesIO()
    draw_product_image(random.Random(0), "Crack").save(buffer, format="PNG")
    payload = buffer.getvalue()
    bucket = storage.Client(project=PROJECT).bucket(BUCKET)
    slots = threading.BoundedSemaphore(4 * workers)
    marks, done, lock = [], [0], threading.Lock()
    step = max(1, count // 10)
    started = time.perf_counter()

    def upload(i: int) -> None:
        try:
            bucket.blob(f"upload-only/img_{i}.png").upload_from_string(
                payload + i.to_bytes(4, "big"), content_type="image/png"
            )
        finally:
            with lock:
                done[0] += 1
                if done[0] % step == 0:
                    marks.append((done[0], time.perf_counter() - started))
            slots.release()

    with ThreadPoolExecutor(workers) as pool:
        for i in range(count):
            slots.acquire()
            pool.submit(upload, i)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "marks": marks, "bytes": len(payload)}


def child_synth(count: int, workers: int) -> dict:
    """The synthesize_images component as it is in the tree, its progress lines timed."""
    from kfp.dsl import Dataset

    from components.progress import parse_progress
    from components.synthesize_images import synthesize_images

    started = time.perf_counter()
    marks: list[tuple[int, float]] = []
    processes = [0]

    class Timed(io.TextIOBase):
        def write(self, text: str) -> int:
            for line in text.splitlines():
                record = parse_progress(line)
                if record:
                    marks.append((record["done"], time.perf_counter() - started))
                found = re.search(r"\((\d+) process\(es\)", line)
                if found and int(found.group(1)) > 1:
                    processes[0] = int(found.group(1))
            return len(text)

    with tempfile.TemporaryDirectory() as scratch:
        manifest = Dataset(name="manifest", uri=str(Path(scratch) / "manifest.csv"), metadata={})
        stdout, sys.stdout = sys.stdout, Timed()
        try:
            synthesize_images.python_func(
                project=PROJECT, bucket=f"gs://{BUCKET}", manifest=manifest, num_images=count, upload_workers=workers
            )
        finally:
            sys.stdout = stdout
        with open(manifest.path) as f:
            rows = sum(1 for _ in f) - 1
    return {"seconds": time.perf_counter() - started, "marks": marks, "rows": rows, "processes": processes[0]}


def child_main(kind: str, count: int, workers: int) -> None:
    result = child_upload(count, workers) if kind == "upload" else child_synth(count, workers)
    result["peak_rss_mb"] = peak_rss_mb(result.get("processes", 0))
    print("@@result " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent


def run_child(kind: str, count: int, workers: int) -> dict:
    """One measurement in its own process, against a fresh storage server."""
    from localvertex.emulator import FakeGcsServer

    with tempfile.TemporaryDirectory(dir=REPO) as scratch:  # the disk the data dir lives on
        server = FakeGcsServer(Path(scratch) / "gcs", default_bucket=BUCKET, project=PROJECT)
        server.start()
        try:
            cpu0 = process_cpu_s(server.pid)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", kind, str(count), str(workers)],
                env={**os.environ, "STORAGE_EMULATOR_HOST": server.url},
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=7200,
            )
            server_cpu = process_cpu_s(server.pid) - cpu0
        finally:
            server.stop()
    line = next((x for x in proc.stdout.splitlines() if x.startswith("@@result ")), None)
    if line is None:
        raise SystemExit(f"{kind} {count} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    result = json.loads(line.removeprefix("@@result "))
    result["server_cpu_ms"] = server_cpu / count * 1000
    return result


def scale(sizes: list[int], workers: int, kinds: list[str]) -> None:
    print(
        "Targets: synthesis + upload >= 500 images/s at 10k; per-image cost at 100k within 20 % of 1k; "
        "peak RSS <= 500 MB at 100k"
    )
    print(
        f"{'what':22} {'images':>7} {'images/s':>9} {'ms/img':>7} {'first 10%':>10} {'last 10%':>9} "
        f"{'storage server':>15} {'peak RSS':>9}  load before"
    )
    for kind in kinds:
        for count in sizes:
            load = load_avg()
            r = run_child(kind, count, workers)
            per = tenths(r["marks"], count)
            ms = r["seconds"] / count * 1000
            label = {"upload": "upload alone", "synth": "synthesize + upload"}[kind]
            first, last = (f"{per[0]:.2f}", f"{per[-1]:.2f}") if per else ("-", "-")
            print(
                f"{label:22} {count:7d} {count / r['seconds']:9.0f} {ms:7.2f} {first:>10} {last:>9} "
                f"{r['server_cpu_ms']:9.2f} ms/img {r['peak_rss_mb']:6.0f} MB  {load}",
                flush=True,
            )
    print(
        f"({workers} upload threads; synthesis of 1,000+ images per core runs in worker processes, and its "
        f"peak RSS adds theirs; 'storage server' is fake-gcs-server's own CPU per image; "
        f"first/last 10%: ms per image in that tenth of the run)"
    )


def upload_test_set(count: int) -> str:
    """``count`` drawn test images and their test JSONL (the pipeline's own tuning lines) in the
    local storage; returns the JSONL's URI."""
    from concurrent.futures import ThreadPoolExecutor

    import bench_serving as serving
    from google.cloud import storage

    from components.dataset_rules import tuning_example
    from components.labels import PROMPT, notebook_labels

    labels = notebook_labels()
    bucket = storage.Client(project=PROJECT).bucket(BUCKET)
    images = serving.pngs(count, seed=3)

    def put(i: int) -> None:
        bucket.blob(f"eval/img_{i}.png").upload_from_string(images[i][0], content_type="image/png")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))
    rows = [{"gcs_uri": f"gs://{BUCKET}/eval/img_{i}.png", "label": labels[kind]} for i, (_, kind) in enumerate(images)]
    lines = [json.dumps(tuning_example(row, PROMPT)) for row in rows]
    bucket.blob("eval/test.jsonl").upload_from_string("\n".join(lines) + "\n")
    return f"gs://{BUCKET}/eval/test.jsonl"


def warm_up(endpoint: str) -> None:
    """One answer from ``endpoint``, so that its model is loaded before the clock starts."""
    import bench_serving as serving
    from google import genai
    from google.genai import types

    from components.labels import PROMPT

    warm = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)
    warm.models.generate_content(
        model=endpoint,
        contents=[PROMPT, types.Part.from_bytes(data=serving.pngs(1)[0][0], mime_type="image/png")],
    )


def timed_evaluation(server_pid: int, endpoint: str, test_uri: str, count: int, concurrency: int, out: Path):
    """(evaluate_inspector's result, seconds, seconds until the last answer, CPU ms per image by
    process, load before) of one evaluation of the test set at ``test_uri``."""
    import contextlib

    from kfp.dsl import HTML, ClassificationMetrics, Dataset, Metrics

    from components.evaluate_inspector import evaluate_inspector

    arts = {
        "metrics": Metrics(name="m", uri=str(out / "m.json"), metadata={}),
        "classification_metrics": ClassificationMetrics(name="c", uri=str(out / "c.json"), metadata={}),
        "report": HTML(name="r", uri=str(out / "r.html"), metadata={}),
        "predictions": Dataset(name="p", uri=str(out / "p.csv"), metadata={}),
    }
    load = load_avg()
    pids = {"server": server_pid, "prediction worker": worker_pid(server_pid)}
    cpu0 = {k: process_cpu_s(p) for k, p in pids.items() if p}
    own0 = time.process_time()
    t0 = time.perf_counter()
    asked = [0.0]

    class Timed(io.TextIOBase):  # when the last answer came (progress lines)
        def write(self, text: str) -> int:
            if "::progress::" in text:
                asked[0] = time.perf_counter() - t0
            return len(text)

    with contextlib.redirect_stdout(Timed()):
        result = evaluate_inspector.python_func(
            project=PROJECT,
            location=LOCATION,
            tuned_endpoint=endpoint,
            test_jsonl_uri=test_uri,
            concurrency=concurrency,
            **arts,
        )
    seconds = time.perf_counter() - t0
    cpu = {k: (process_cpu_s(pids[k]) - v) / count * 1000 for k, v in cpu0.items()}
    cpu["component (client)"] = (time.process_time() - own0) / count * 1000
    return result, seconds, asked[0], cpu, load


def evaluation(count: int, concurrency: int, data_dir: Path | None = None, endpoint: str | None = None) -> None:
    """evaluate_inspector over ``count`` test images against `python -m localvertex serve`
    (on ``data_dir`` holding ``endpoint``, or a fresh one with a small model tuned first)."""
    sys.path.insert(0, str(REPO / "bench"))
    import bench_serving as serving

    with tempfile.TemporaryDirectory(dir=REPO) as scratch:
        server = serving.Server(data_dir or Path(scratch) / "lv")
        try:
            if not endpoint:
                t0 = time.perf_counter()
                endpoint = serving.tune_endpoint(serving.pngs(48, seed=1))
                print(f"tuned a small model in {time.perf_counter() - t0:.0f} s: {endpoint}")
            warm_up(endpoint)
            test_uri = upload_test_set(count)
            result, seconds, asked, cpu, load = timed_evaluation(
                server.proc.pid, endpoint, test_uri, count, concurrency, Path(scratch) / "out"
            )
            print(
                f"evaluate_inspector, {count} test images, concurrency {concurrency}: {seconds:.1f} s "
                f"({count / seconds:.0f} images/s; answers after {asked:.1f} s, then scoring, "
                f"thumbnails and report; status accuracy {result.status_accuracy:.3f})   "
                f"target <= 15 s; load before {load}"
            )
            print("  CPU per image: " + ", ".join(f"{k} {v:.1f} ms" for k, v in cpu.items()))
        finally:
            server.stop()


def offline(count: int, epochs: int, assignments: list[str]) -> None:
    from pipeline import offline as off
    from pipeline import params

    settings = params.resolve(
        {**off.LOCAL_DEFAULTS, "num_images": count, "epoch_count": epochs, **params.parse_assignments(assignments)}
    )
    print(
        f"offline run: num_images={count}, epoch_count={epochs} {' '.join(assignments)}; load before {load_avg()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(dir=REPO) as scratch:
        log_sizes: list[tuple[float, int]] = []
        t0 = time.monotonic()

        def on_event(event) -> None:
            logs = list((Path(scratch) / "runs").glob("*/pipeline.log"))
            if logs:
                log_sizes.append((time.monotonic() - t0, logs[0].stat().st_size))
            if event.kind == "end":
                print(f"  {event.task:24} {event.status} at {time.monotonic() - t0:7.1f} s", flush=True)

        result = off.run_offline(settings, on_event, runs_dir=Path(scratch) / "runs", data_dir=Path(scratch) / "data")
    print(f"{'step':24} {'seconds':>8}")
    for task, seconds in result.task_seconds.items():
        note = f"  ({count / seconds:.0f} images/s)" if task == "synthesize-images" else ""
        print(f"{task:24} {seconds:8.1f}{note}")
    print(f"{'end to end':24} {result.seconds:8.1f}   ok={result.ok} {result.error[:200]}")
    metrics = {k: v for k, v in result.metrics.items() if k.startswith("eval_")}
    print("metrics:", json.dumps(metrics))
    growing = sorted({size for _, size in log_sizes})
    print(
        f"pipeline.log while running: {len(growing)} distinct sizes seen at task events "
        f"(first {growing[0] if growing else 0} B, last {growing[-1] if growing else 0} B)"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="image counts, comma-separated (100000: ~10 min)")
    parser.add_argument("--workers", type=int, default=8, help="upload threads")
    parser.add_argument(
        "--only",
        choices=["upload", "synth"],
        help="one measurement only",
    )
    parser.add_argument("--eval", type=int, metavar="N", help="evaluate N test images instead")
    parser.add_argument("--concurrency", type=int, default=16, help="evaluation requests in flight")
    parser.add_argument("--data-dir", type=Path, help="--eval: a local Vertex AI data folder holding --endpoint")
    parser.add_argument("--endpoint", help="--eval: a tuned endpoint there (default: tune a small one, ~2 min)")
    parser.add_argument("--offline", type=int, metavar="N", help="an offline run of N images instead")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the offline run")
    parser.add_argument("--param", action="append", default=[], help="--offline: pipeline parameter key=value")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average {load_avg()}")
    if args.eval:
        evaluation(args.eval, args.concurrency, args.data_dir, args.endpoint)
    elif args.offline:
        offline(args.offline, args.epochs, args.param)
    else:
        kinds = [args.only] if args.only else ["upload", "synth"]
        scale([int(s) for s in args.sizes.split(",") if s], args.workers, kinds)


if __name__ == "__main__":
    main()
