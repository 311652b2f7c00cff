"""``python -m pipeline validate``: a tuning JSONL checked by the pipeline's own rules.

Table-driven: each rule with a line that breaks it (one clean line before it, so the line
number is checked too), the rules' agreement with tuning_example_problem (build_tuning_jsonl's
check), a clean file, exit codes, --json, a chat ``messages`` file, a gs:// file and its images
in the session's storage emulator (tests/conftest.py), images that cannot be looked up, and the
report's exact format.
"""

import inspect
import io
import json
import re

import pytest
from PIL import Image
from typer.testing import CliRunner

from components import dataset_rules as rules
from pipeline import validate
from pipeline.commands import app
from tests import test_dataset_rules

PROMPT = "Analyze the following product image for manufacturing defects."
PNG = "gs://local-bucket/validate/ok.png"


def image(uri=PNG, mime="image/png"):
    return {"fileData": {"mimeType": mime, "fileUri": uri}}


def example(*user_parts, answer="Status: Pass", system=None):
    line = {
        "contents": [
            {"role": "user", "parts": [{"text": PROMPT}, *user_parts]},
            {"role": "model", "parts": [{"text": answer}]},
        ]
    }
    if system is not None:
        line["systemInstruction"] = system
    return line


GOOD = example(image())


def turns(*pairs, **extra):
    """A contents line from (role, parts) pairs."""
    return {"contents": [{"role": role, "parts": parts} for role, parts in pairs], **extra}


def chat(*messages):
    return {"messages": [{"role": role, "content": content} for role, content in messages]}


def run_cli(*args):
    return CliRunner().invoke(app, ["validate", *map(str, args)])


def write(tmp_path, *lines, name="train.jsonl"):
    """A JSONL file of dicts (dumped) and str/bytes lines (as they are)."""
    path = tmp_path / name
    path.write_bytes(
        b"".join(
            (
                json.dumps(line).encode()
                if isinstance(line, dict)
                else line
                if isinstance(line, bytes)
                else line.encode()
            )
            + b"\n"
            for line in lines
        )
    )
    return path


# ---- every rule, with a line that breaks it (line 2; line 1 is clean)

BROKEN = [
    # json
    ("not json", "json", "not valid JSON (Expecting value, column 1)"),
    ('{"contents": [', "json", "not valid JSON (Expecting value, column 15)"),
    ("[1, 2]", "json", "expected a JSON object, got list [1, 2]"),
    ('{"contents": NaN}', "json", "not valid JSON (NaN is not a JSON value)"),
    (b'{"contents": "\xff"}', "json", "not UTF-8 text (byte 15 is b'\\xff')"),
    ("[" * 100_000, "json", "not valid JSON (nested too deeply to read)"),
    # format
    ({}, "format", "no contents"),
    ({"content": []}, "format", "no contents"),
    ({"contents": "x"}, "format", "contents must be a list of turns, got str"),
    ({"contents": [5, {"role": "model", "parts": [{"text": "y"}]}]}, "format", "contents[0] is not an object"),
    ({"messages": {"role": "user"}}, "format", "messages must be a list, got dict"),
    # roles and their order
    (turns(("model", [{"text": "y"}])), "roles", "contents[0].role is 'model'; roles must alternate user/model"),
    (
        turns(("user", [{"text": "x"}, image()]), ("user", [{"text": "x"}]), ("model", [{"text": "y"}])),
        "roles",
        "contents[1].role is 'user'; roles must alternate user/model",
    ),
    (
        turns(("user", [{"text": "x"}, image()]), ("assistant", [{"text": "y"}])),
        "roles",
        "contents[1].role is 'assistant'; roles must alternate user/model",
    ),
    (turns(("user", [{"text": "x"}, image()])), "roles", "the last turn must be the model's answer"),
    # part types
    (
        turns(("user", [{"text": "  "}, image()]), ("model", [{"text": "y"}])),
        "parts",
        "contents[0] has no non-empty text part",
    ),
    (example(image(), answer=""), "parts", "contents[1] has no non-empty text part"),
    (
        turns(("user", [{"text": 5}, image()]), ("model", [{"text": "y"}])),
        "parts",
        "contents[0].parts[0].text must be a string, got int",
    ),
    (
        example(image(), {"inlineData": {"mimeType": "image/png", "data": "aGk="}}),
        "parts",
        "contents[0].parts[2] holds inline image data; tuning datasets take images only as fileData",
    ),
    (example(image(), {"text": "x", **image()}), "parts", "contents[0].parts[2] has both text and fileData"),
    (example(image(), {"image": PNG}), "parts", "contents[0].parts[2] has no text or fileData (its keys: image)"),
    (example(image(), {"functionCall": {"name": "f"}}), "parts", "contents[0].parts[2] is a functionCall part"),
    (
        turns(("user", [{"text": "x"}, image()]), ("model", [{"text": "y"}, image()])),
        "parts",
        "contents[1].parts[1]: a model turn may hold only text (the answer)",
    ),
    (turns(("user", {"text": "x"}), ("model", [{"text": "y"}])), "parts", "contents[0].parts must be a list, got dict"),
    (
        example(image(), {"fileData": "gs://b/a.png"}),
        "parts",
        "contents[0].parts[2].fileData must be an object with mimeType and fileUri",
    ),
    (example(image("data:image/png;base64,aGk=")), "parts", "holds inline image data (a data: URL)"),
    # system instruction placement
    (
        example(image(), system="Be brief."),
        "system_instruction",
        "systemInstruction must be an object with a non-empty parts list, got 'Be brief.'",
    ),
    (
        example(image(), system={"parts": [image()]}),
        "system_instruction",
        "systemInstruction.parts[0] must be a text part",
    ),
    (
        turns(("system", [{"text": "Be brief."}]), ("user", [{"text": "x"}, image()]), ("model", [{"text": "y"}])),
        "system_instruction",
        "contents[0].role is 'system'; a system instruction goes in the line's systemInstruction",
    ),
    (
        chat(("user", f"{PROMPT} {PNG}"), ("assistant", "Status: Pass"), ("system", "Be brief.")),
        "system_instruction",
        "messages[2] is a system message; only the first message may be one",
    ),
    # supported MIME types
    (
        example(image("gs://b/a.gif", "image/gif")),
        "mime",
        "gs://b/a.gif has the unsupported type image/gif; use PNG, JPEG, WebP or HEIC",
    ),
    (example({"fileData": {"fileUri": PNG}}), "mime", "contents[0].parts[1].fileData has no mimeType"),
    # images per example, an image in every example
    (example(*[image()] * 31), "image_count", "31 images; Vertex AI accepts at most 30 per example"),
    (example(), "no_image", "no image: this inspector learns from a product image in every example"),
    # image URIs
    (example({"fileData": {"mimeType": "image/png"}}), "image_missing", "contents[0].parts[1].fileData has no fileUri"),
    (
        example(image("file:///tmp/a.png")),
        "image_missing",
        "contents[0].parts[1]: fileUri file:///tmp/a.png is neither a gs:// URI nor an http(s) URL",
    ),
    (
        example(image("gs://bucket-only")),
        "image_missing",
        "contents[0].parts[1]: gs://bucket-only is not a gs://bucket/object URI",
    ),
    # tokens per example: 4 characters a token, 1,120 an image (Gemini 3 at the default resolution)
    (
        example(image(), answer="y" * 600_000),
        "tokens",
        "about 150,{tokens} tokens (150,{text} of text, 1,120 for 1 image(s)); gemini-3.5-flash accepts at most 131,072 "
        "per example",
    ),
]


@pytest.mark.parametrize("line, kind, message", BROKEN, ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(BROKEN)])
def test_each_rule_names_the_line_the_kind_and_the_fix(tmp_path, line, kind, message):
    report = validate.validate_data(write(tmp_path, GOOD, line).read_bytes(), "train.jsonl", lookup=False)
    mine = [p for p in report.problems if p["kind"] == kind]
    assert mine, report.problems
    if "{tokens}" in message:  # the exact count depends on the prompt's length
        message = (
            r"about 15\d,\d+ tokens \(150,\d+ of text, 1,120 for 1 image\(s\)\); gemini-3.5-flash accepts at most "
            r"131,072 per example"
        )
        assert re.fullmatch(message, mine[0]["message"]), mine[0]["message"]
    else:
        assert any(message in p["message"] for p in mine), [p["message"] for p in mine]
    assert {p["line"] for p in report.problems} == {2}, "line 1 is clean; every problem is on line 2"
    assert all(p["fix"] for p in report.problems)
    assert not report.ok


def test_the_byte_order_mark_and_the_token_limit_boundary(tmp_path):
    text_tokens = 131_072 - 1120  # one image (Gemini 3, default resolution): the rest is text, 4 characters a token
    fits = example(image(), answer="y" * (4 * text_tokens - len(PROMPT)))
    over = example(image(), answer="y" * (4 * text_tokens - len(PROMPT) + 1))
    report = validate.validate_data(b"\xef\xbb\xbf" + write(tmp_path, fits, over).read_bytes(), "t.jsonl", lookup=False)
    assert [(p["line"], p["kind"]) for p in report.problems] == [(1, "json"), (2, "tokens")]
    assert "byte order mark" in report.problems[0]["message"]
    assert report.problems[1]["message"].startswith("about 131,073 tokens")
    # gemini-3.1-flash-lite has the same limit today; the limit comes from platform_facts.gemini
    assert validate.validate_data(write(tmp_path, fits).read_bytes(), "t", "gemini-3.1-flash-lite", lookup=False).ok


@pytest.mark.parametrize(
    "sizes, kind, message",
    [
        ({}, "image_missing", f"{PNG} does not exist"),
        ({PNG: 20 * 2**20 + 1}, "image_size", f"{PNG} is 20.0 MB; Vertex AI accepts at most 20 MB per image"),
        ({PNG: 20 * 2**20}, None, None),
        ({PNG: None}, None, None),  # could not be looked up: said elsewhere, not a problem of the line
    ],
)
def test_image_existence_and_size_come_from_the_sizes_looked_up(sizes, kind, message):
    problems = rules.jsonl_line_problems(GOOD, 7, sizes)
    assert [(p["line"], p["kind"], p["message"]) for p in problems] == ([(7, kind, message)] if kind else [])


@pytest.mark.parametrize(
    "lines, validation, message",
    [
        ([], False, "the file has no examples"),
        (["", "   "], False, "the file has no examples"),
        ([GOOD] * 5001, True, "5,001 examples; a validation dataset may have at most 5,000"),
    ],
)
def test_whole_file_rules(tmp_path, lines, validation, message):
    report = validate.validate_data(
        write(tmp_path, *lines).read_bytes(), "v.jsonl", validation=validation, lookup=False
    )
    assert [(p["line"], p["kind"], p["message"]) for p in report.problems] == [(None, "file", message)]
    assert validate.validate_data(write(tmp_path, GOOD, GOOD).read_bytes(), "v", validation=True, lookup=False).ok


def test_every_problem_of_every_line_is_reported(tmp_path):
    lines = [GOOD, "oops", example(image("gs://b/a.gif", "image/gif"), answer=""), GOOD, {}]
    report = validate.validate_data(write(tmp_path, *lines).read_bytes(), "t.jsonl", lookup=False)
    assert [(p["line"], p["kind"]) for p in report.problems] == [(2, "json"), (3, "parts"), (3, "mime"), (5, "format")]
    assert (report.lines, report.examples) == (5, 4)
    assert report.counts() == {"json": 1, "format": 1, "parts": 1, "mime": 1}


# ---- one rule set: the pipeline's own check agrees


@pytest.mark.parametrize("case", test_dataset_rules.test_tuning_example_problem.pytestmark[0].args[1])
def test_the_first_problem_is_the_one_build_tuning_jsonl_refuses(case):
    example_, problem = case
    found = rules.jsonl_line_problems(example_, 1, test_dataset_rules.SIZES)
    if problem is None:
        assert found == []
    else:
        assert found[0]["message"] == problem == rules.tuning_example_problem(example_, test_dataset_rules.SIZES)


@pytest.mark.parametrize("extension", ["png", "jpg", "jpeg", "webp", "heic", "heif", "gif"])
def test_every_line_build_tuning_jsonl_writes_is_judged_alike(extension):
    row = {"gcs_uri": f"gs://b/img.{extension}", "label": "Status: Defect - Crack identified in main body."}
    sizes = {row["gcs_uri"]: 1000}
    for system in ("", "You are a QC inspector."):
        line = json.loads(json.dumps(rules.tuning_example(row, PROMPT, system)))  # as written to the file
        first = (rules.jsonl_line_problems(line, 1, sizes) or [{"message": None}])[0]["message"]
        assert first == rules.tuning_example_problem(line, sizes)


def test_the_line_rules_run_from_their_source_alone_as_kfp_ships_them():
    """What jsonl_line_problems reaches (components/shipping.py) runs from its source alone."""
    from components.shipping import shipped_functions

    shipped = [rules.jsonl_line_problems, *shipped_functions(rules.jsonl_line_problems)]
    namespace = {}
    exec("\n\n".join(inspect.getsource(f) for f in shipped), namespace)
    broken = example(image("gs://b/a.gif", "image/gif"), answer="")
    assert namespace["jsonl_line_problems"](broken, 3, {}) == rules.jsonl_line_problems(broken, 3, {})


# ---- the command: a clean file, exit codes, --json, messages, gs://


def test_a_clean_file_exits_0(tmp_path):
    path = write(
        tmp_path,
        GOOD,
        example(image(), system={"role": "system", "parts": [{"text": "Be brief."}]}),
        "",
        example(image("https://example.com/a.jpg", "image/jpeg")),
    )
    result = run_cli(path, "--no-lookup")
    assert result.exit_code == 0, result.output
    # blank lines are skipped: 3 lines
    assert result.stdout.splitlines()[-1] == "summary: no problems: 3 lines, 3 examples, 2 image(s), 0 looked up"
    assert "not checked: 1 image(s): not looked up (--no-lookup)" in result.stdout
    assert "not checked: 1 image(s): http(s) URLs are not looked up" in result.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["{tmp}/absent.jsonl"], 2, "error: {tmp}/absent.jsonl does not exist"),
        (["{tmp}"], 2, "error: {tmp} is not a file"),
        (["gs://"], 2, "error: gs:// is not a gs://bucket/object URI"),
        (["{good}", "--base-model", "gemini-1.0-pro"], 2, "is not a Gemini model that supervised tuning supports"),
        (["{good}", "--no-lookup"], 0, "summary: no problems"),
        (["{bad}", "--no-lookup"], 1, "summary: 1 problem(s) in 1 line(s) (json 1)"),
        ([], 2, "Missing argument 'FILE_OR_GS_URI'"),
    ],
)
def test_exit_codes(tmp_path, args, code, message):
    good, bad = write(tmp_path, GOOD, name="good.jsonl"), write(tmp_path, GOOD, "{", name="bad.jsonl")
    fill = {"tmp": tmp_path, "good": good, "bad": bad}
    result = run_cli(*[a.format(**fill) for a in args])
    assert result.exit_code == code, result.output
    assert message.format(**fill) in result.output
    assert "Traceback" not in result.output


def test_json_output_is_one_document(tmp_path):
    path = write(tmp_path, GOOD, "oops", example(image("gs://b/a.gif", "image/gif")))
    result = run_cli(path, "--no-lookup", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)  # the whole of stdout
    assert document["ok"] is False and document["format"] == "contents" and document["conversion"] is None
    assert (document["lines"], document["examples"], document["examples_with_problems"]) == (3, 2, 2)
    assert document["problem_counts"] == {"json": 1, "mime": 1}
    assert document["problems"][0] == {
        "file": str(path),
        "line": 2,
        "kind": "json",
        "message": "not valid JSON (Expecting value, column 1)",
        "fix": rules.jsonl_problem_kinds()["json"],
    }
    assert document["images"] == {
        "referenced": 2,
        "looked_up": 0,
        "not_checked": 2,
        "not_checked_reasons": {"not looked up (--no-lookup)": 2},
    }
    assert document["base_model"] == "gemini-3.5-flash" and document["max_example_tokens"] == 131_072
    missing = run_cli(tmp_path / "absent.jsonl", "--json")
    assert missing.exit_code == 2
    assert json.loads(missing.stdout) == {
        "file": str(tmp_path / "absent.jsonl"),
        "ok": False,
        "error": f"{tmp_path / 'absent.jsonl'} does not exist",
    }


def test_a_messages_file_is_checked_as_the_contents_it_converts_to(tmp_path):
    clean = [
        chat(("system", "You are a QC inspector."), ("user", f"{PROMPT} {PNG}"), ("assistant", "Status: Pass")),
        chat(
            ("user", [{"type": "text", "text": PROMPT}, {"type": "image_url", "image_url": {"url": PNG}}]),
            ("model", "Status: Defect - Crack identified in main body."),
        ),
    ]
    result = run_cli(write(tmp_path, *clean), "--no-lookup")
    assert result.exit_code == 0, result.output
    assert "chat JSONL ('messages')" in result.stdout
    assert "note: chat 'messages' lines are checked as the Gemini 'contents' they convert to" in result.stdout
    assert "summary: no problems: 2 lines, 2 examples, 1 image(s)" in result.stdout

    broken = [
        chat(("user", PROMPT), ("assistant", "Status: Pass")),  # no image
        chat(("assistant", "Hello"), ("user", f"{PROMPT} {PNG}"), ("assistant", "Status: Pass")),  # starts wrong
        chat(("user", [{"type": "image_url", "image_url": {"url": "gs://b/x.bmp"}}]), ("assistant", "Status: Pass")),
        chat(("user", [{"type": "text", "text": PROMPT}, {"inline_data": {"data": "aGk="}}]), ("assistant", "x")),
        example(image()),  # the other format
    ]
    report = validate.validate_data(write(tmp_path, *broken).read_bytes(), "chat.jsonl", lookup=False)
    assert report.format == "mixed"
    assert [(p["line"], p["kind"], p["message"]) for p in report.problems] == [
        (1, "no_image", "no image: this inspector learns from a product image in every example"),
        (2, "roles", "messages[0].role is 'assistant'; roles must alternate user/assistant"),
        (3, "parts", "messages[0] has no non-empty text part"),
        (3, "mime", "gs://b/x.bmp has the unsupported type image/bmp; use PNG, JPEG, WebP or HEIC"),
        (4, "parts", "messages[0].content[1] holds inline image data; tuning datasets take images only as fileData"),
        (5, "format", "this line uses 'contents' but the file's first example uses 'messages'"),
    ]


def png_bytes(size=(8, 8)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_gs_file_and_its_images_in_cloud_storage(local_stack, tmp_path):
    from google.cloud import storage

    bucket = storage.Client(project="local-project").bucket("local-bucket")
    bucket.blob("validate/ok.png").upload_from_string(png_bytes(), content_type="image/png")
    bucket.blob("validate/big.png").upload_from_string(b"\0" * (20 * 2**20 + 1), content_type="image/png")
    lines = [
        GOOD,
        example(image("gs://local-bucket/validate/big.png")),
        example(image("gs://local-bucket/validate/gone.png")),
        example(image("gs://no-such-bucket/a.png")),
    ]
    bucket.blob("validate/train.jsonl").upload_from_string("".join(json.dumps(x) + "\n" for x in lines))

    result = run_cli("gs://local-bucket/validate/train.jsonl", "--json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["file"] == "gs://local-bucket/validate/train.jsonl"
    assert [(p["line"], p["kind"], p["message"]) for p in document["problems"]] == [
        (2, "image_size", "gs://local-bucket/validate/big.png is 20.0 MB; Vertex AI accepts at most 20 MB per image"),
        (3, "image_missing", "gs://local-bucket/validate/gone.png does not exist"),
        (4, "image_missing", "gs://no-such-bucket/a.png does not exist"),
    ]
    assert document["images"]["looked_up"] == 4 and document["images"]["not_checked"] == 0

    local = write(tmp_path, *lines)  # a local file naming gs:// images: looked up all the same
    assert json.loads(run_cli(local, "--json").stdout)["problem_counts"] == {"image_missing": 2, "image_size": 1}
    assert run_cli("gs://local-bucket/validate/none.jsonl").exit_code == 2


def test_images_that_cannot_be_looked_up_are_said_not_checked(monkeypatch, tmp_path):
    import google.auth.exceptions
    from google.api_core import exceptions as api_errors

    calls = []

    class Blob:
        size = 100

    class Bucket:
        def __init__(self, name):
            self.name = name

        def get_blob(self, name, **kwargs):
            calls.append((self.name, name))
            assert kwargs.get("retry", "unset") is None, "no retries: an unreachable bucket must fail fast"
            if self.name == "locked":
                raise api_errors.Forbidden("caller does not have storage.objects.get access")
            return Blob()

    class Client:
        def bucket(self, name):
            return Bucket(name)

    lines = [example(image(f"gs://locked/{i}.png")) for i in range(5)] + [example(image("gs://open/a.png"))]
    monkeypatch.setattr(validate, "storage_client", lambda project: Client())
    report = validate.validate_data(write(tmp_path, *lines).read_bytes(), "t.jsonl")
    assert report.ok and report.looked_up == 1
    assert report.not_checked == {"gs://locked: 403 caller does not have storage.objects.get access": 5}
    assert sum(1 for bucket, _ in calls if bucket == "locked") == 1, "one try per unreachable bucket"

    def no_credentials(project):
        raise google.auth.exceptions.DefaultCredentialsError("none")

    monkeypatch.setattr(validate, "storage_client", no_credentials)
    result = run_cli(write(tmp_path, *lines))
    assert result.exit_code == 0
    assert "not checked: 6 image(s): not looked up: no Google credentials" in result.stdout


def test_the_report_format(tmp_path):
    path = write(tmp_path, GOOD, {"contents": [{"role": "model", "parts": [{"text": "y"}]}]}, "oops")
    result = run_cli(path, "--no-lookup")
    assert result.exit_code == 1
    assert result.stdout == (
        f"{path}: Gemini tuning JSONL ('contents'), checked against gemini-3.5-flash (at most 131,072 tokens per "
        "example)\n"
        f"{path}:2: roles: contents[0].role is 'model'; roles must alternate user/model\n"
        "    fix: start with a user turn, alternate user and model, and end with the model's answer\n"
        f"{path}:3: json: not valid JSON (Expecting value, column 1)\n"
        "    fix: write each example as one JSON object on one line of UTF-8 text\n"
        "not checked: 1 image(s): not looked up (--no-lookup)\n"
        "summary: 2 problem(s) in 2 line(s) (json 1, roles 1): 3 lines, 2 examples, 1 image(s), "
        "0 looked up\n"
    )


def test_lines_end_at_newline_only():
    """U+2028 and U+0085 are legal inside a JSON string; str.splitlines would split there."""
    line = json.dumps(example(image(), answer="Status: Pass\u2028\u0085"), ensure_ascii=False)
    data = (line + "\r\n" + line + "\n").encode()
    assert [n for n, _ in rules.jsonl_lines(data)] == [1, 2]
    report = validate.validate_data(data, "t.jsonl", lookup=False)
    assert report.ok and report.examples == 2
