"""``python -m pipeline inspect``: ask an inspector about images (pipeline/inspector.py asks;
pipeline/champion.py finds the champion and the data folder's local Vertex AI)."""

import json
from pathlib import Path

import typer

from pipeline.champion import LOCAL_PROJECT, Unreachable, local_data_dir
from pipeline.commands.options import DATA_DIR_HELP
from pipeline.terminal import fail, say


def inspect_command(
    images: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    endpoint: str | None = typer.Option(
        None, help="Endpoint to ask (default: the inspector's champion, the one `champion` shows)."
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="Inspector whose champion to ask (default: the latest successful run's on the data folder, as `champion`).",
    ),
    latest: bool = typer.Option(False, "--latest", help="Ask the latest successful run's endpoint, not the champion."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
):
    """Ask the inspector about images (sent inline, as a camera client would): the champion by default."""
    from components.clients import endpoint_location, genai_client
    from localvertex import DataDirInUse
    from pipeline.champion import choose_inspector, local_services
    from pipeline.inspector import NothingToAsk, ask_image, environment, inspect_target

    folder = local_data_dir(data_dir)
    inspector, run, why = choose_inspector(folder, name)
    params = run["params"] if run else {}
    say(f"data folder: {folder}")
    try:
        with local_services(folder) as (env, where), environment(env):
            target, source, note = inspect_target(env, inspector, why, run, endpoint, latest)
            if note:
                say(note)
            say(f"asking {source} on {where}:\n  {target['endpoint']}")
            # A tuned Gemini 3 model answers on its multi-region endpoint ("us", "eu"), named in the endpoint.
            location = endpoint_location(target["endpoint"], params.get("location", "us-central1"))
            client = genai_client(params.get("project", LOCAL_PROJECT), location, 2)
            if not target.get("base_model"):  # a given endpoint or a run's checkpoint: the run's base model
                target["base_model"] = params.get("base_model", "")
            rows = [ask_image(client, target, image) for image in images]
    except (DataDirInUse, Unreachable, NothingToAsk) as error:
        fail(str(error), code=1)
    for row in rows:
        if as_json:
            print(json.dumps(row), flush=True)
        elif row["error"]:
            print(f"{row['file']}\terror: {row['error']}", flush=True)
        else:
            print(f"{row['file']}\t{row['answer']}\t{row['status']}\t{row['defect_type'] or '-'}", flush=True)
    if any(row["error"] for row in rows):
        say(f"some images got no answer from {target['endpoint']} ({source}, data folder {folder})")
        raise typer.Exit(1)
