"""Fuzzed inputs for the three front doors: the JSONL validator, the importer and the local
``generateContent``.

Seeded (``SEED``), bounded counts. Every bad input must give a clear error naming its place (the
JSONL line, the image URI), never a crash (an exception other than the documented ones, a
traceback, an HTTP 500), and nothing partial: no manifest file when the import fails. Each input
is counted in tests/faults/counts.py (printed at the end of the run).

Cases marked xfail(strict=True) are bugs the fuzzing found and not yet fixed (see their
``reason``): each turns into a failure once it is fixed, so the mark is removed then.
"""

import base64
import copy
import io
import json
import random
import struct
import time
import uuid
import zlib

import httpx
import pytest
from google.cloud import storage
from kfp import dsl
from PIL import Image
from typer.testing import CliRunner

from components import dataset_rules as rules
from components.import_dataset import import_dataset
from pipeline import validate
from pipeline.commands import app
from tests.faults import counts

pytestmark = pytest.mark.faults

SEED = 15  # issue 15; every generator below is random.Random(f"{SEED}-<name>")
PROJECT, LOCATION, BUCKET = "local-project", "us-central1", "local-bucket"
PROMPT = "Analyze the following product image for manufacturing defects."
MAX_MESSAGE = 20_000  # an error about a huge input must not be huge itself


def rng_for(name):
    return random.Random(f"{SEED}-{name}")


# ---- inputs


def random_value(rng, depth=0):
    """A random JSON value: every type, odd strings (spaces, Unicode, lone surrogates), big numbers."""
    kind = rng.choice(
        ["null", "bool", "int", "float", "str", "list", "dict"]
        if depth < 3
        else ["null", "bool", "int", "float", "str"]
    )
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 7, 2**63, -(10**30)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e-9])
    if kind == "str":
        return rng.choice(
            [
                "",
                " ",
                "user",
                "model",
                "gs://",
                "gs://b",
                "gs://local-bucket/x y.png",
                "image/png",
                "\u2028",
                "\ud800",
                "画像",
                "x" * 300,
                "Status: Pass",
                "data:image/png;base64,AA==",
            ]
        )
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(["role", "parts", "text", "fileData", "fileUri", "mimeType", "contents", "x"]): random_value(
            rng, depth + 1
        )
        for _ in range(rng.randint(0, 3))
    }


def mutate(obj, rng):
    """A copy of a JSON value with one node replaced by a random value (or a key dropped)."""
    obj = copy.deepcopy(obj)
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*path, index))

    walk(obj, ())
    path = rng.choice(paths[1:])
    parent = obj
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and rng.random() < 0.25:
        del parent[path[-1]]
    else:
        parent[path[-1]] = random_value(rng)
    return obj


def truncations(text, rng, n):
    """``n`` distinct proper prefixes of ``text`` (never empty, never whole)."""
    cuts = sorted(rng.sample(range(1, len(text)), min(n, len(text) - 1)))
    return [text[:k] for k in cuts]


def random_line(rng, n=60):
    """Random bytes with no newline and not blank (one JSONL line)."""
    return b"#" + bytes(rng.choice([b for b in range(256) if b != 10]) for _ in range(n))


def encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


_shade = iter(range(1, 10**6))


def picture(mode="RGB", size=(16, 16)):
    """A small image in ``mode`` whose content differs on every call."""
    n = next(_shade)
    image = Image.new("RGB", size, ((n * 37) % 256, (n * 91) % 256, (n * 13) % 256))
    image.putpixel((n % size[0], 0), (255 - (n % 256), 0, 0))
    if mode == "I;16":  # the full 16-bit range, as a camera writes it
        return image.convert("L").convert("I").point(lambda value: value * 257).convert("I;16")
    if mode == "P":
        palette = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        palette.info["transparency"] = 0
        return palette
    return image.convert(mode)


def png(mode="RGB", size=(16, 16)):
    return encoded(picture(mode, size), "PNG")


def png_header_only(width, height, bit_depth=1, color_type=0, rows=None):
    """A PNG of ``width`` x ``height`` 1-bit grey pixels; all rows of zeros (a few MB at most,
    deflated to a few KB), or only ``rows`` of them (a file that promises more than it holds)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (width * bit_depth + 7) // 8)
    pixels = zlib.compress(row * (height if rows is None else rows), 9)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


# ---- the validator


GOOD_LINE = {
    "contents": [
        {
            "role": "user",
            "parts": [
                {"text": PROMPT},
                {"fileData": {"mimeType": "image/png", "fileUri": "gs://local-bucket/f/a.png"}},
            ],
        },
        {"role": "model", "parts": [{"text": "Status: Pass"}]},
    ],
    "systemInstruction": {"parts": [{"text": "You are a QC inspector."}]},
}
GOOD_CHAT = {
    "messages": [
        {"role": "system", "content": "You are a QC inspector."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": PROMPT},
                {"type": "image_url", "image_url": {"url": "gs://local-bucket/f/a.png"}},
            ],
        },
        {"role": "assistant", "content": "Status: Pass"},
    ]
}


def validator_inputs():
    """(name, line bytes, must be refused) for the validator: truncated, random, wrong types, huge."""
    rng = rng_for("validator")
    text = json.dumps(GOOD_LINE)
    cases = [(f"truncated-{len(t)}", t.encode(), True) for t in truncations(text, rng, 60)]
    cases += [(f"random-{i}", random_line(rng), True) for i in range(40)]
    cases += [(f"mutated-{i}", json.dumps(mutate(GOOD_LINE, rng)).encode(), False) for i in range(120)]
    cases += [(f"mutated-chat-{i}", json.dumps(mutate(GOOD_CHAT, rng)).encode(), False) for i in range(60)]
    cases += [(f"value-{i}", json.dumps(random_value(rng)).encode(), False) for i in range(30)]
    huge_uri = copy.deepcopy(GOOD_LINE)
    huge_uri["contents"][0]["parts"][1]["fileData"] = {"mimeType": "image/gif", "fileUri": "gs://b/" + "x" * 10**6}
    many_parts = copy.deepcopy(GOOD_LINE)
    many_parts["contents"][0]["parts"] += [{"fileData": {"mimeType": "image/png", "fileUri": "gs://b/p.png"}}] * 20_000
    surrogate = copy.deepcopy(GOOD_LINE)
    surrogate["contents"][0]["parts"][1]["fileData"] = {"mimeType": "image/\ud800", "fileUri": "gs://b/\udcff.gif"}
    cases += [
        ("huge-text", json.dumps(example_with_answer("y" * 8_000_000)).encode(), True),
        ("huge-uri", json.dumps(huge_uri).encode(), True),
        ("many-parts", json.dumps(many_parts).encode(), True),
        ("deep-nesting", b"[" * 200_000, True),
        ("deep-objects", (b'{"a":' * 5_000) + b"1" + b"}" * 5_000, True),
        ("deep-but-readable", b'{"messages": [{"role": ' + b'{"a":' * 800 + b"1" + b"}" * 800 + b"}]}", True),
        ("deep-contents", b'{"contents": [{"role": "user", "parts": [' + b"[" * 800 + b"]" * 800 + b"]}]}", True),
        ("lone-surrogates", json.dumps(surrogate).encode(), True),
        ("nul-bytes", b'{"contents": "\x00"}', True),
        ("latin-1", json.dumps({"contents": "caf\u00e9"}).encode("latin-1"), True),
    ]
    return cases


def example_with_answer(answer):
    line = copy.deepcopy(GOOD_LINE)
    line["contents"][1]["parts"][0]["text"] = answer
    return line


def test_the_validator_names_the_line_of_every_bad_input(tmp_path):
    cases = validator_inputs()
    counts.add_bad_inputs(len(cases))
    data = b"\n".join([json.dumps(GOOD_LINE).encode()] + [line for _, line, _ in cases]) + b"\n"
    started = time.monotonic()
    report = validate.validate_data(data, "fuzz.jsonl", lookup=False)
    assert time.monotonic() - started < 20, "the validator must stay fast on huge lines"
    by_line = {}
    for problem in report.problems:
        by_line.setdefault(problem["line"], []).append(problem)
        assert isinstance(problem["message"], str) and len(problem["message"]) <= MAX_MESSAGE
        assert problem["fix"] and problem["kind"] in rules.jsonl_problem_kinds()
    assert 1 not in by_line, "the clean first line has no problem"
    for number, (name, _, refused) in enumerate(cases, start=2):
        if refused:
            assert number in by_line, f"{name} (line {number}) was not refused"

    # The command prints every problem and exits 1: no traceback, whatever the bytes.
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(path), "--no-lookup"])
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception
    )
    assert "Traceback" not in result.output
    assert result.stdout.splitlines()[-1].startswith(f"summary: {len(report.problems)} problem(s)")
    document = json.loads(runner.invoke(app, ["validate", str(path), "--no-lookup", "--json"]).stdout)
    assert len(document["problems"]) == len(report.problems)


def test_the_line_rules_never_raise_on_any_json_value():
    """jsonl_line_problems and example_image_uris on 2,000 random values and mutations."""
    rng = rng_for("rules")
    values = [random_value(rng) for _ in range(1000)] + [
        mutate(rng.choice([GOOD_LINE, GOOD_CHAT]), rng) for _ in range(1000)
    ]
    counts.add_bad_inputs(len(values))
    for value in values:
        problems = rules.jsonl_line_problems(value, 9, sizes={})
        assert all(p["line"] == 9 and p["message"] for p in problems)
        assert all(isinstance(uri, str) for uri in rules.example_image_uris(value))


# ---- the importer (components/import_dataset.py) against the session's storage emulator


@pytest.fixture(scope="module")
def bucket(local_stack):
    return storage.Client(project=PROJECT).bucket(BUCKET)


def put(bucket, name, data):
    bucket.blob(name).upload_from_string(data, content_type="application/octet-stream")
    return f"gs://{BUCKET}/{name}"


def run_import(dataset_uri, tmp_path):
    """("ok", rows) or ("error", message); any other exception is a crash and fails the test."""
    path = tmp_path / f"manifest-{uuid.uuid4().hex[:6]}.csv"
    manifest = dsl.Dataset(name="manifest", uri=str(path), metadata={})
    try:
        import_dataset.python_func(project=PROJECT, dataset_uri=dataset_uri, manifest=manifest)
    except (ValueError, FileNotFoundError) as error:
        assert not path.exists() or path.stat().st_size == 0, "a failed import wrote a manifest"
        assert len(str(error)) <= MAX_MESSAGE, f"an error of {len(str(error)):,} characters"
        return "error", str(error)
    rows = path.read_text().splitlines()
    assert rows[0] == "image_name,gcs_uri,status,defect_type,label,sha256"
    return "ok", rows[1:]


def base_images(bucket, prefix):
    """Two distinct images in each of two classes, as a folder tree."""
    return {
        f"{prefix}/{cls}/{cls}_{i}.png": put(bucket, f"{prefix}/{cls}/{cls}_{i}.png", png())
        for cls in ("pass", "dent")
        for i in range(2)
    }


BAD_IMAGES = [
    ("zero.png", lambda: b"", "is empty (0 bytes)"),
    ("truncated.png", lambda: png(size=(64, 64))[:150], "is unreadable: Pillow cannot decode it"),
    ("truncated.jpg", lambda: encoded(picture(size=(64, 64)), "JPEG")[:300], "is unreadable"),
    ("jpeg-named.png", lambda: encoded(picture(), "JPEG"), "is a JPEG file but named .png"),
    ("png-named.jpg", lambda: png(), "is a PNG file but named .jpg"),
    ("webp-named.jpeg", lambda: encoded(picture(), "WEBP"), "is a WEBP file but named .jpeg"),
    ("random.webp", lambda: random_line(rng_for("webp"), 400), "is unreadable"),
    ("text.png", lambda: b"not an image at all", "is unreadable"),
    ("anim.gif", lambda: encoded(picture(), "GIF"), "has an unsupported format ('.gif')"),
    ("no-extension", lambda: png(), "has an unsupported format (no file extension)"),
    ("fake.heic", lambda: png(), "is not a HEIC/HEIF file (no ftyp header)"),
    ("bomb.png", lambda: png_header_only(30_000, 30_000, rows=10), "pixels"),
    ("big.png", lambda: png(size=(8, 8)) + b"\0" * (20 * 2**20), "MB; Vertex AI accepts at most 20 MB per image"),
    # was a bug: every image Pillow allows (up to 178 megapixels) was decoded; image_pixels_problem reads the header
    ("48-megapixels.png", lambda: png_header_only(8_000, 6_000), "8000x6000 pixels (48 megapixels)"),
]


@pytest.mark.parametrize("name, make, fragment", BAD_IMAGES, ids=[case[0] for case in BAD_IMAGES])
def test_a_bad_image_fails_the_import_naming_it(bucket, tmp_path, name, make, fragment):
    prefix = f"fuzz/img-{uuid.uuid4().hex[:8]}"
    base_images(bucket, prefix)
    uri = put(bucket, f"{prefix}/dent/{name}", make())
    counts.add_bad_inputs()
    outcome, message = run_import(f"gs://{BUCKET}/{prefix}/", tmp_path)
    assert outcome == "error", message
    if "unsupported format" in fragment:  # the extension is refused before anything is read
        assert f"image {uri} has an unsupported format" in message
    assert uri in message and fragment in message, message


def test_the_pixel_rule_reads_the_header_only():
    record = rules.image_record("m.csv row 2", "gs://b/huge.png", "Pass", "None", "Status: Pass")
    counts.add_bad_inputs(4)
    started = time.monotonic()
    assert rules.image_pixels_problem(record, png_header_only(8_000, 6_000)) == (
        "m.csv row 2: image gs://b/huge.png is 8000x6000 pixels (48 megapixels); the pipeline decodes at most 40 "
        "megapixels per image: scale it down"
    )
    assert rules.image_pixels_problem(record, png_header_only(30_000, 30_000, rows=1)) == (
        "m.csv row 2: image gs://b/huge.png has more than 179 megapixels; the pipeline decodes at most 40 megapixels "
        "per image: scale it down"
    )
    assert time.monotonic() - started < 1, "nothing may be decoded"
    assert rules.image_pixels_problem(record, png_header_only(6_000, 6_000)) is None  # 36 megapixels
    assert rules.image_pixels_problem(record, b"not an image") is None  # image_content_problem says why
    assert rules.max_image_pixels() < Image.MAX_IMAGE_PIXELS / 2


def test_unusual_but_valid_images_import(bucket, tmp_path):
    """CMYK, 16-bit, alpha, palette, 1-bit, grey and progressive files are images too."""
    prefix = f"fuzz/odd-{uuid.uuid4().hex[:8]}"
    odd = {
        "pass/cmyk.jpg": encoded(picture("CMYK"), "JPEG"),
        "pass/grey.jpeg": encoded(picture("L"), "JPEG", progressive=True),
        "pass/sixteen-bit.png": png("I;16"),
        "pass/alpha.png": png("RGBA"),
        "pass/one-bit.png": png("1"),
        "dent/palette-transparent.png": png("P"),
        "dent/grey-alpha.png": png("LA"),
        "dent/alpha.webp": encoded(picture("RGBA"), "WEBP", lossless=True),
        "dent/progressive.jpg": encoded(picture(), "JPEG", progressive=True, quality=60),
    }
    uris = {put(bucket, f"{prefix}/{name}", data) for name, data in odd.items()}
    counts.add_bad_inputs(len(odd))
    outcome, rows = run_import(f"gs://{BUCKET}/{prefix}/", tmp_path)
    assert outcome == "ok", rows
    assert {row.split(",")[1] for row in rows} == uris


NAMES = [
    "pass/a 1.png",
    "pass/画像 2.png",
    "pass/  leading and trailing  .png",
    "dent mark/x#y?.png",
    "dent mark/x%20y.png",
    "dent mark/plus+sign&amp.png",
    "dent mark/ümlaut é.png",
]


def label_for(name):
    return "Status: Pass" if name.startswith("pass") else "Status: Defect - Dent on the lid."


@pytest.mark.parametrize("layout", ["folder", "csv", "jsonl"])
def test_unicode_and_spaces_in_object_names(bucket, tmp_path, layout):
    """A folder tree, a CSV with relative paths, a contents JSONL: the odd names come back as stored."""
    prefix = f"fuzz/names-{uuid.uuid4().hex[:8]}"
    uris = [put(bucket, f"{prefix}/images/{name}", png()) for name in NAMES]
    counts.add_bad_inputs(len(NAMES))
    if layout == "folder":
        dataset_uri = f"gs://{BUCKET}/{prefix}/images/"
    elif layout == "csv":
        text = "image,label\n" + "".join(f'"images/{name}",{label_for(name)}\n' for name in NAMES)
        dataset_uri = put(bucket, f"{prefix}/labels.csv", text.encode())
    else:
        lines = [
            json.dumps(
                {
                    "contents": [
                        {
                            "role": "user",
                            "parts": [{"text": PROMPT}, {"fileData": {"mimeType": "image/png", "fileUri": uri}}],
                        },
                        {"role": "model", "parts": [{"text": label_for(name)}]},
                    ]
                },
                ensure_ascii=False,
            )
            for name, uri in zip(NAMES, uris, strict=True)
        ]
        dataset_uri = put(bucket, f"{prefix}/tuning.jsonl", "\n".join(lines).encode())
    # Was an xfail under gcp-storage-emulator, whose unquoted mediaLinks lost '#' and '%20' in
    # downloads; fake-gcs-server's are quoted, as Cloud Storage's are.
    outcome, rows = run_import(dataset_uri, tmp_path)
    assert outcome == "ok", rows
    assert {row.split(",")[1].strip('"') for row in rows} == set(uris), "every name comes back exactly as stored"


def test_the_validator_looks_up_odd_object_names(bucket):
    """Spaces, Unicode, '#', '?' and '%' in gs:// image names: each is looked up as itself."""
    prefix = f"fuzz/validate-names-{uuid.uuid4().hex[:8]}"
    uris = [put(bucket, f"{prefix}/{name}", png()) for name in NAMES]
    missing = f"gs://{BUCKET}/{prefix}/pass/nicht da #1.png"
    lines = [copy.deepcopy(GOOD_LINE) for _ in [*uris, missing]]
    for line, uri in zip(lines, [*uris, missing], strict=True):
        line["contents"][0]["parts"][1]["fileData"]["fileUri"] = uri
    counts.add_bad_inputs(len(lines))
    data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    report = validate.validate_data(data, "names.jsonl", project=PROJECT)
    assert report.looked_up == len(lines) and not report.not_checked
    assert [(p["line"], p["message"]) for p in report.problems] == [(len(lines), f"{missing} does not exist")]


def manifest_inputs():
    """(name, fuzzed JSONL line, expected outcome, xfail reason or None) for line 5 of a manifest
    whose lines 1-4 are good; the outcome is "ok", "error" or None (either)."""
    rng = rng_for("manifest")
    flat = {"image": "IMAGE", "label": "Status: Pass"}
    contents = {
        "contents": [
            {"role": "user", "parts": [{"text": PROMPT}, {"fileData": {"mimeType": "image/png", "fileUri": "IMAGE"}}]},
            {"role": "model", "parts": [{"text": "Status: Pass"}]},
        ]
    }
    chat = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": PROMPT}, {"type": "image_url", "image_url": {"url": "IMAGE"}}],
            },
            {"role": "assistant", "content": "Status: Pass"},
        ]
    }
    cases = [(f"truncated-{len(t)}", t, "error", None) for t in truncations(json.dumps(contents), rng, 6)]
    cases += [(f"random-{i}", random_line(rng, 40).decode("latin-1"), "error", None) for i in range(3)]
    for base, n in ((flat, 4), (contents, 6), (chat, 5)):
        cases += [(f"mutated-{next(iter(base))}-{i}", json.dumps(mutate(base, rng)), None, None) for i in range(n)]
    cases += [
        ("wrong-types", json.dumps({"image": ["IMAGE"], "label": {"text": 1}}), "error", None),
        ("contents-not-a-list", json.dumps({"contents": {"role": "user"}}), "error", None),
        (
            "huge-label",
            json.dumps({"image": "IMAGE", "label": "Status: Defect - " + "Dent" * 500_000}),
            "error",
            None,  # was a bug: a 2 MB error quoting the class whole; dataset_rules.quoted bounds it
        ),
        ("huge-line", json.dumps({"image": "IMAGE", "label": "Status: Pass", "note": "x" * 5_000_000}), "ok", None),
        ("deep-nesting", "[" * 100_000, "error", None),  # was a RecursionError crash; now names line 5
        # was refused: str.splitlines split a valid line at U+2028 inside a string
        (
            "u2028-in-a-string",
            json.dumps({"image": "IMAGE", "label": "Status: Pass\u2028"}, ensure_ascii=False),
            "ok",
            None,
        ),
    ]
    return cases


MANIFEST_CASES = manifest_inputs()


@pytest.mark.parametrize(
    "name, line, expected, bug",
    [
        pytest.param(*case, marks=[pytest.mark.xfail(strict=True, reason=case[3])] if case[3] else [], id=case[0])
        for case in MANIFEST_CASES
    ],
)
def test_a_fuzzed_manifest_line_fails_naming_it_or_imports(bucket, tmp_path, name, line, expected, bug):
    prefix = f"fuzz/manifest-{uuid.uuid4().hex[:8]}"
    good = [put(bucket, f"{prefix}/{cls}_{i}.png", png()) for cls in ("pass", "dent") for i in range(2)]
    labels = ["Status: Pass"] * 2 + ["Status: Defect - Dent detected on product surface."] * 2
    fifth = put(bucket, f"{prefix}/pass_5.png", png())
    text = "".join(json.dumps({"image": uri, "label": label}) + "\n" for uri, label in zip(good, labels, strict=True))
    text += line.replace("IMAGE", fifth) + "\n"
    counts.add_bad_inputs()
    outcome, message = run_import(
        put(bucket, f"{prefix}/manifest.jsonl", text.encode("utf-8", "surrogatepass")), tmp_path
    )
    assert expected in (None, outcome), message
    if outcome == "error":
        assert "manifest.jsonl line 5" in message, message
    else:
        assert len(message) in (4, 5), "the good lines are all imported"


# ---- generateContent of the local Vertex AI


@pytest.fixture(scope="module")
def endpoint(local_stack, bucket):
    """A tuned endpoint: one epoch on four tiny images (the smallest job the local trainer runs)."""
    from google import genai
    from google.genai import types

    prefix = f"fuzz/tune-{uuid.uuid4().hex[:8]}"
    lines = []
    for i, (label, colour) in enumerate(
        [
            ("Status: Pass", (90, 90, 170)),
            ("Status: Pass", (80, 80, 160)),
            ("Status: Defect - Crack identified in main body.", (250, 250, 250)),
            ("Status: Defect - Crack identified in main body.", (240, 240, 240)),
        ]
    ):
        uri = put(bucket, f"{prefix}/{i}.png", encoded(Image.new("RGB", (16, 16), colour), "PNG"))
        lines.append(
            json.dumps(
                {
                    "contents": [
                        {
                            "role": "user",
                            "parts": [{"text": PROMPT}, {"fileData": {"mimeType": "image/png", "fileUri": uri}}],
                        },
                        {"role": "model", "parts": [{"text": label}]},
                    ]
                }
            )
        )
    train = put(bucket, f"{prefix}/train.jsonl", "\n".join(lines).encode())
    client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)
    job = client.tunings.tune(
        base_model="gemini-3.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=train),
        config=types.CreateTuningJobConfig(epoch_count=1, adapter_size="ADAPTER_SIZE_ONE"),
    )
    deadline = time.monotonic() + 120
    while not job.has_ended:
        assert time.monotonic() < deadline, f"tuning still {job.state} after 120 s"
        time.sleep(0.3)
        job = client.tunings.get(name=job.name)
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    return {"client": client, "name": job.tuned_model.endpoint, "prefix": prefix, "image": json.loads(lines[0])}


@pytest.fixture(scope="module")
def token(local_stack):
    import google.auth.transport.requests
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(
        local_stack.env["GOOGLE_APPLICATION_CREDENTIALS"], scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(google.auth.transport.requests.Request())
    return credentials.token


def post(local_stack, token, path, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8", "surrogatepass")
    return httpx.post(
        f"{local_stack.vertex_url}/v1beta1/{path}",
        content=data,
        timeout=60,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def assert_google_error(response, allowed=(400, 404, 413)):
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert {"code", "message", "status"} <= set(error) <= {"code", "message", "status", "details"}, error
    assert error["code"] == response.status_code and isinstance(error.get("details", []), list)
    assert isinstance(error["message"], str) and error["status"].isupper()
    assert len(error["message"]) <= MAX_MESSAGE


def inline(data, mime="image/png"):
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


def request_with(part):
    return {"contents": [{"role": "user", "parts": [{"text": PROMPT}, part]}], "generationConfig": {"temperature": 0}}


def request_inputs():
    """(name, body, xfail reason or None): raw bodies, then mutations of a good request."""
    rng = rng_for("requests")
    good = request_with(inline(png()))
    text = json.dumps(good)
    cases = [(f"truncated-{len(t)}", t.encode(), None) for t in truncations(text, rng, 10)]
    cases += [(f"random-{i}", random_line(rng, 80), None) for i in range(5)]
    cases += [(f"mutated-{i}", mutate(good, rng), None) for i in range(40)]
    cases += [
        ("not-an-object", b"[1, 2]", None),
        ("empty-object", b"{}", None),
        ("many-parts", {"contents": [{"role": "user", "parts": [{"text": "x"}] * 20_000}]}, None),
        ("deep-nesting", b"[" * 100_000, None),  # 400: "Message too deep. Max recursion depth is 100."
        ("deep-objects", (b'{"contents":' + b'{"a":' * 900 + b"1" + b"}" * 900 + b"}"), None),
    ]
    return cases


REQUEST_CASES = request_inputs()


@pytest.mark.parametrize(
    "name, body, bug",
    [
        pytest.param(*case, marks=[pytest.mark.xfail(strict=True, reason=case[2])] if case[2] else [], id=case[0])
        for case in REQUEST_CASES
    ],
)
def test_a_fuzzed_request_gets_a_google_style_answer(local_stack, token, endpoint, name, body, bug):
    counts.add_bad_inputs()
    response = post(local_stack, token, f"{endpoint['name']}:generateContent", body)
    if response.status_code == 200:  # a mutation that left a valid request
        assert response.json()["candidates"][0]["content"]["parts"][0]["text"]
    else:
        assert_google_error(response)


def test_odd_endpoint_paths_get_a_google_style_error(local_stack, token):
    paths = ["画像", "a b", "x" * 300, "%00", "..", "1:streamGenerateContent", "123", "-", "1:generateContent:x"]
    counts.add_bad_inputs(len(paths))
    for path in paths:
        response = post(
            local_stack,
            token,
            f"projects/{PROJECT}/locations/{LOCATION}/endpoints/{path}:generateContent",
            request_with({"text": "x"}),
        )
        assert_google_error(response, allowed=(400, 404, 501))


IMAGES = [  # (name, bytes, mimeType, answers): False means a 400 INVALID_ARGUMENT, None either
    ("zero-byte", b"", "image/png", False),
    ("truncated-png", png(size=(64, 64))[:150], "image/png", False),
    ("random-bytes", random_line(rng_for("inline"), 300), "image/jpeg", False),
    ("bomb", png_header_only(30_000, 30_000, rows=10), "image/png", False),
    ("jpeg-labelled-png", encoded(picture(), "JPEG"), "image/png", True),
    ("cmyk-jpeg", encoded(picture("CMYK"), "JPEG"), "image/jpeg", True),
    ("sixteen-bit-png", png("I;16"), "image/png", True),
    ("alpha-png", png("RGBA"), "image/png", True),
    ("palette-png", png("P"), "image/png", True),
    ("one-bit-png", png("1"), "image/png", True),
    ("grey-alpha-png", png("LA"), "image/png", True),
    ("alpha-webp", encoded(picture("RGBA"), "WEBP"), "image/webp", True),
    ("48-megapixels", png_header_only(8_000, 6_000), "image/png", None),  # decoded today (48 MB as 1-bit)
]


@pytest.mark.parametrize("name, data, mime, answers", IMAGES, ids=[case[0] for case in IMAGES])
def test_odd_images_through_the_sdk(endpoint, name, data, mime, answers):
    """google-genai's own client, inline images: an answer, or a 400 that says why; never a 5xx."""
    from google.genai import errors, types

    counts.add_bad_inputs()
    client = endpoint["client"]
    contents = [types.Part.from_text(text=PROMPT), types.Part.from_bytes(data=data, mime_type=mime)]
    try:
        response = client.models.generate_content(
            model=endpoint["name"], contents=contents, config=types.GenerateContentConfig(temperature=0.0)
        )
    except errors.ClientError as error:
        assert answers is not True, f"{name}: {error.code} {error.message}"
        assert error.code == 400 and error.status == "INVALID_ARGUMENT"
        assert "image" in error.message or "inlineData" in error.message, error.message
        return
    assert answers is not False, f"{name} got an answer: {response.text!r}"
    assert response.text.startswith("Status:")


def test_unicode_and_spaces_in_image_uris(endpoint, bucket):
    """fileData naming objects with spaces and Unicode is read; a missing one is a 400 naming it."""
    from google.genai import errors, types

    client = endpoint["client"]
    names = ["a 1.png", "画像 2.png", "ümlaut é.png", "x%20y.png", "plus+sign.png"]
    counts.add_bad_inputs(len(names) + 1)
    for name in names:
        uri = put(bucket, f"{endpoint['prefix']}/names/{name}", png())
        response = client.models.generate_content(
            model=endpoint["name"],
            contents=[types.Part.from_text(text=PROMPT), types.Part.from_uri(file_uri=uri, mime_type="image/png")],
        )
        assert response.text.startswith("Status:"), name
    missing = f"gs://{BUCKET}/{endpoint['prefix']}/names/nicht da.png"
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(
            model=endpoint["name"],
            contents=[types.Part.from_text(text=PROMPT), types.Part.from_uri(file_uri=missing, mime_type="image/png")],
        )
    assert caught.value.code == 400 and missing in caught.value.message
