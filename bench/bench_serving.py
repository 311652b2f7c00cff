"""Benchmark of serving: the tuned inspector over HTTP (generateContent with an inline PNG).

Starts the local Vertex AI in its own process (``python -m localvertex serve``, as `make serve`
does), tunes a small model once if no endpoint is given, then prints, against the targets of
issue 13:
  * the model alone (InspectorModel.generate on one image, and on a batch of 64), in-process;
  * one client, sequential requests on a kept-alive connection: p50 / p90 / p99 (target p50 <= 10 ms),
    and the same through google-genai (what a component sees);
  * N concurrent clients, each a kept-alive connection sending requests back to back for a few
    seconds: images/s and p50 / p99 (target >= 500 images/s at 16 and at 64 clients).
The load generator is deliberately light (http.client, one prepared body per image) so that
it measures the server; it shares the machine's cores with it. It asserts nothing. From the
repository root:
    python bench/bench_serving.py [--clients 16,64] [--seconds 8] [--data-dir DIR --endpoint NAME]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

PROJECT, LOCATION, BUCKET = "local-project", "us-central1", "local-bucket"
PROMPT = "Analyze the following product image for manufacturing defects."


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def pngs(count: int, seed: int = 7) -> list[tuple[bytes, str | None]]:
    """``count`` drawn product images (PNG bytes, defect type), balanced over the four classes."""
    from components.drawing import draw_product_image

    rng = random.Random(seed)
    kinds = [None, "Scratch", "Crack", "Discoloration"]
    out = []
    for i in range(count):
        kind = kinds[i % 4]
        buf = io.BytesIO()
        draw_product_image(rng, kind).save(buf, format="PNG")
        out.append((buf.getvalue(), kind))
    return out


class Server:
    """``python -m localvertex serve`` on free ports, in its own process."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localvertex",
                "serve",
                "--port",
                "0",
                "--storage-port",
                "0",
                "--data-dir",
                str(data_dir),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.env = {}
        for line in self.proc.stdout:
            if line.startswith("export "):
                key, _, value = line[len("export ") :].strip().partition("=")
                self.env[key] = value.strip("'")
            if line.startswith("# data:"):
                break
        if "GOOGLE_VERTEX_BASE_URL" not in self.env:
            raise SystemExit("the local Vertex AI did not start")
        os.environ.update(self.env)
        self.url = self.env["GOOGLE_VERTEX_BASE_URL"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def tune_endpoint(images: list[tuple[bytes, str | None]]) -> str:
    """Uploads ``images`` with labels and tunes 2 epochs; returns the tuned endpoint."""
    from google import genai
    from google.cloud import storage
    from google.genai import types

    from components.labels import notebook_labels

    labels = notebook_labels()
    bucket = storage.Client(project=PROJECT).bucket(BUCKET)
    lines = []
    for i, (data, kind) in enumerate(images):
        name = f"bench-serving/img_{i}.png"
        bucket.blob(name).upload_from_string(data, content_type="image/png")
        lines.append(
            json.dumps(
                {
                    "contents": [
                        {
                            "role": "user",
                            "parts": [
                                {"text": PROMPT},
                                {"fileData": {"mimeType": "image/png", "fileUri": f"gs://{BUCKET}/{name}"}},
                            ],
                        },
                        {"role": "model", "parts": [{"text": labels[kind]}]},
                    ]
                }
            )
        )
    bucket.blob("bench-serving/train.jsonl").upload_from_string("\n".join(lines) + "\n")
    client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)
    job = client.tunings.tune(
        base_model="gemini-3.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=f"gs://{BUCKET}/bench-serving/train.jsonl"),
        config=types.CreateTuningJobConfig(epoch_count=2),
    )
    deadline = time.monotonic() + 600
    while job.state.name not in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
        if time.monotonic() > deadline:
            raise SystemExit(f"tuning {job.name} did not finish in 10 minutes")
        time.sleep(1)
        job = client.tunings.get(name=job.name)
    if job.state.name != "JOB_STATE_SUCCEEDED":
        raise SystemExit(f"tuning failed: {job.error}")
    return job.tuned_model.endpoint


def access_token() -> str:
    import google.auth.transport.requests
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"], scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    creds.refresh(google.auth.transport.requests.Request())
    return creds.token


def request_body(png: bytes) -> bytes:
    """What google-genai sends for generate_content(contents=[prompt, image]) at temperature 0."""
    return json.dumps(
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": PROMPT},
                        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}},
                    ],
                }
            ],
            "generationConfig": {"temperature": 0.0, "maxOutputTokens": 256},
        }
    ).encode()


class Client:
    """One kept-alive HTTP/1.1 connection posting generateContent."""

    def __init__(self, url: str, endpoint: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.path = f"/v1beta1/{endpoint}:generateContent"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def ask(self, body: bytes) -> str:
        self.conn.request("POST", self.path, body=body, headers=self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:300]!r}")
        return json.loads(data)["candidates"][0]["content"]["parts"][0]["text"]


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return at(0.5), at(0.9), at(0.99)


def sequential(url: str, endpoint: str, token: str, bodies: list[bytes], count: int) -> list[float]:
    client = Client(url, endpoint, token)
    for body in bodies[:5]:  # warm-up: model load, connection
        client.ask(body)
    latencies = []
    for i in range(count):
        t0 = time.perf_counter()
        client.ask(bodies[i % len(bodies)])
        latencies.append(time.perf_counter() - t0)
    return latencies


def with_genai(endpoint: str, images: list[tuple[bytes, str | None]], count: int) -> list[float]:
    from google import genai
    from google.genai import types

    client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)
    config = types.GenerateContentConfig(temperature=0.0, max_output_tokens=256)
    parts = [[PROMPT, types.Part.from_bytes(data=data, mime_type="image/png")] for data, _ in images]
    for p in parts[:3]:
        client.models.generate_content(model=endpoint, contents=p, config=config)
    latencies = []
    for i in range(count):
        t0 = time.perf_counter()
        client.models.generate_content(model=endpoint, contents=parts[i % len(parts)], config=config)
        latencies.append(time.perf_counter() - t0)
    return latencies


def concurrent(
    url: str, endpoint: str, token: str, bodies: list[bytes], clients: int, seconds: float
) -> tuple[float, list[float], int]:
    """(images/s, latencies, errors) of ``clients`` connections sending back to back."""
    stop_at = [0.0]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def run(k: int) -> None:
        client = Client(url, endpoint, token)
        client.ask(bodies[k % len(bodies)])  # connect before the clock starts
        mine, i = [], k
        ready.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                client.ask(bodies[i % len(bodies)])
                mine.append(time.perf_counter() - t0)
            except Exception:  # counted, not fatal
                with lock:
                    errors[0] += 1
                client = Client(url, endpoint, token)
            i += clients
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + 3600
    ready.wait()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors[0]


def process_cpu_s(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def worker_pid(server_pid: int) -> int | None:
    """The prediction process of the server (a child started on the first request)."""
    for task in Path(f"/proc/{server_pid}/task").glob("*"):
        try:
            for child in (task / "children").read_text().split():
                if "prediction_worker" in Path(f"/proc/{child}/cmdline").read_text():
                    return int(child)
        except OSError:
            continue
    return None


def model_alone(data_dir: Path, endpoint: str, images: list[tuple[bytes, str | None]]) -> tuple[float, float]:
    """ms per image of InspectorModel.generate: one image, and a batch of 64."""
    import torch

    from localvertex.jobs import JobStore
    from localvertex.model import InspectorModel, load_image

    job = JobStore(data_dir).by_endpoint(endpoint.rsplit("/", 1)[1])
    model = InspectorModel.load(data_dir / "models" / job["_local"]["modelId"])
    decoded = [load_image(data) for data, _ in images]
    torch.set_num_threads(1)
    model.generate(decoded[:1])
    t0 = time.perf_counter()
    for i in range(50):
        model.generate([decoded[i % len(decoded)]])
    one = (time.perf_counter() - t0) / 50 * 1000
    batch = (decoded * 64)[:64]
    model.generate(batch)
    t0 = time.perf_counter()
    for _ in range(5):
        model.generate(batch)
    return one, (time.perf_counter() - t0) / 5 / 64 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,16,64", help="concurrency levels, comma-separated")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each concurrent run")
    parser.add_argument("--sequential", type=int, default=300, help="sequential requests for the latency figures")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is printed)")
    parser.add_argument("--data-dir", type=Path, help="a local Vertex AI data folder holding --endpoint")
    parser.add_argument("--endpoint", help="projects/.../endpoints/ID (default: tune one first, ~1 min)")
    args = parser.parse_args()

    scratch = None if args.data_dir else tempfile.TemporaryDirectory()
    data_dir = (args.data_dir or Path(scratch.name)).resolve()
    images = pngs(64)
    bodies = [request_body(data) for data, _ in images]
    print(f"load average before: {load_avg()} ({os.cpu_count()} cores)")
    server = Server(data_dir)
    try:
        endpoint = args.endpoint
        if not endpoint:
            t0 = time.perf_counter()
            endpoint = tune_endpoint(pngs(48, seed=1))
            print(f"tuned {endpoint} in {time.perf_counter() - t0:.0f} s")
        token = access_token()
        one, batched = model_alone(data_dir, endpoint, images)
        print(
            f"model alone: {one:.1f} ms for one image, {batched:.2f} ms per image in a batch of 64 "
            f"({1000 / batched:.0f} images/s)"
        )

        runs = [
            percentiles(sequential(server.url, endpoint, token, bodies, args.sequential)) for _ in range(args.repeat)
        ]
        p50, p90, p99 = (statistics.median(r[i] for r in runs) for i in range(3))
        print(
            f"one client, raw HTTP keep-alive, {args.sequential} requests x {args.repeat}: "
            f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms   (target p50 <= 10 ms)"
        )
        g50, g90, g99 = percentiles(with_genai(endpoint, images, min(args.sequential, 200)))
        print(f"one client, google-genai: p50 {g50:.1f} ms, p90 {g90:.1f} ms, p99 {g99:.1f} ms")

        pids = (server.proc.pid, worker_pid(server.proc.pid))
        print(
            f"{'clients':>8} {'images/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'of model':>9} "
            f"{'CPU ms/img: server + model process':>36}   (median of {args.repeat})"
        )
        for clients in [int(c) for c in args.clients.split(",") if c]:
            results, cpu = [], []
            for _ in range(args.repeat):
                before = [process_cpu_s(p) for p in pids]
                results.append(concurrent(server.url, endpoint, token, bodies, clients, args.seconds))
                done = len(results[-1][1]) + clients
                cpu.append([(process_cpu_s(p) - b) / done * 1000 for p, b in zip(pids, before, strict=True)])
            rate = statistics.median(r[0] for r in results)
            mid = sorted(results, key=lambda r: r[0])[len(results) // 2]
            c50, _, c99 = percentiles(mid[1])
            server_ms, worker_ms = (statistics.median(c[i] for c in cpu) for i in range(2))
            target = "   (target >= 500)" if clients in (16, 64) else ""
            print(
                f"{clients:8d} {rate:9.0f} {c50:8.1f} {c99:8.1f} {sum(r[2] for r in results):7d} "
                f"{rate * batched / 1000:8.0%} {server_ms:17.2f} + {worker_ms:.2f}{target}"
            )
        print(
            "'of model': images/s as a share of the model alone in a batch of 64, measured just before; "
            "CPU ms/img: the server process and the prediction process, per answered image"
        )
        print(f"load average after: {load_avg()}")
    finally:
        server.stop()
        if scratch:
            scratch.cleanup()


if __name__ == "__main__":
    main()
