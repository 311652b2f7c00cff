"""``python -m pipeline validate FILE_OR_GS_URI``: check a Gemini tuning JSONL before anyone pays
(pipeline/validate.py reads and checks it), and print the report or one JSON document.

Exit codes: 0 no problems, 1 problems, 2 usage error (no such file, unreadable, bad option).
"""

import json

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.terminal import fail
from pipeline.validate import CONVERSION, Report, SourceError, read_source, validate_data
from platform_facts.gemini import base_model_id, recommended_models, tuning_problems

out = Console(highlight=False, soft_wrap=True)


def printable(text: str) -> str:
    """``text`` with lone surrogates (a file name from the OS, a JSON string) as \\udxxx escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def print_report(report: Report) -> None:
    """The human report on stdout: one header line, each problem as "file:line: kind: message"
    with its fix below, the images that were not checked, then the summary (the last line)."""
    what = {
        "contents": "Gemini tuning JSONL ('contents')",
        "messages": "chat JSONL ('messages')",
        "mixed": "JSONL mixing 'contents' and 'messages' lines",
        "unknown": "JSONL of no known format",
    }
    source = printable(report.source)
    out.print(
        f"{escape(source)}: {what[report.format]}, checked against {report.base_model} "
        f"(at most {report.max_example_tokens:,} tokens per example)",
        markup=True,
    )
    if report.format in ("messages", "mixed"):
        out.print(f"note: {escape(CONVERSION)}")
    for problem in report.problems:
        where = f"{source}:{problem['line']}" if problem["line"] is not None else source
        out.print(f"[red]{escape(where)}: {problem['kind']}:[/red] {escape(printable(problem['message']))}")
        out.print(f"    fix: {escape(printable(problem['fix']))}")
    for reason, count in report.not_checked.items():
        out.print(f"[yellow]not checked:[/yellow] {count} image(s): {escape(printable(reason))}")
    counts = ", ".join(f"{kind} {n}" for kind, n in report.counts().items())
    images = f"{report.images} image(s), {report.looked_up} looked up"
    if report.ok:
        out.print(f"[green]summary: no problems[/green]: {report.lines} lines, {report.examples} examples, {images}")
    else:
        lines_with = len({p["line"] for p in report.problems if p["line"] is not None})
        out.print(
            f"[red]summary: {len(report.problems)} problem(s)[/red] in {lines_with} line(s) ({counts}): "
            f"{report.lines} lines, {report.examples} examples, {images}"
        )


def validate_command(
    source: str = typer.Argument(..., metavar="FILE_OR_GS_URI", help="A local .jsonl file or a gs:// object."),
    base_model: str = typer.Option(
        recommended_models()["base_model"], help="Base model whose limits apply (python -m pipeline models)."
    ),
    validation: bool = typer.Option(
        False, "--validation", help="Check it as a validation dataset (at most 5,000 examples)."
    ),
    lookup: bool = typer.Option(True, "--lookup/--no-lookup", help="Look up gs:// images (exists, at most 20 MB)."),
    project: str | None = typer.Option(None, envvar="GOOGLE_CLOUD_PROJECT", help="Project for Cloud Storage."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout instead of the report."),
):
    """Check a Gemini tuning JSONL (or a chat 'messages' file) against Vertex AI's rules before you pay.

    Reports every problem with its file, line and fix. Exit code: 0 clean, 1 problems, 2 usage error.
    """

    def usage_error(message: str) -> None:
        if as_json:
            print(printable(json.dumps({"file": source, "ok": False, "error": message}, ensure_ascii=False)))
        fail(printable(message), 2)

    model = base_model_id(base_model)
    problems = tuning_problems(base_model)
    if problems:  # an unknown, untunable or retired model
        usage_error(problems[0])
    try:
        data = read_source(source, project)
    except SourceError as error:
        usage_error(str(error))
    report = validate_data(data, source, model, validation, project, lookup)
    if as_json:
        print(printable(json.dumps(report.as_json(), ensure_ascii=False)))
    else:
        print_report(report)
    raise typer.Exit(0 if report.ok else 1)
