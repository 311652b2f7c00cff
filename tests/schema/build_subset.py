"""Builds localvertex/schema/aiplatform.<version>.json, the slice of Vertex AI's published
REST schema that the local Vertex AI serves, from the vendored discovery documents here.

    python -m tests.schema.build_subset          # rewrite the two files
    python -m tests.schema.build_subset --check  # exit 1 if they are out of date

Inputs (nothing is typed in by hand):
- ``tests/schema/aiplatform.{v1,v1beta1}.json``: google-api-python-client's discovery
  documents (``googleapiclient/discovery_cache/documents/``), copied unchanged. They give
  every message, field, JSON type, format, enum value name, and "Output only." /
  "Required." field behaviour.
- the protobuf descriptors google-cloud-aiplatform ships (``aiplatform_v1[beta1].types``):
  they give the enum *numbers*, which protobuf JSON accepts in requests and which
  ``$alt=json;enum-encoding=int`` returns. A discovery document lists enum values in
  declaration order, which is not always number order (``AdapterSize``: ONE=1, TWO=6,
  FOUR=2), so the list index is never used as the number. Values the installed protos do
  not know yet (the discovery document can be newer) get no number: they are accepted by
  name only.

Output per schema: ``properties`` (type, format, $ref, items, additionalProperties, enum,
readOnly), ``required`` (fields whose description starts with "Required."), ``proto`` (the
message's full protobuf name, for error messages) and, per enum field, ``enumNumbers`` and
``enumType``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE.parent.parent / "localvertex" / "schema"
VERSIONS = {"v1": "GoogleCloudAiplatformV1", "v1beta1": "GoogleCloudAiplatformV1beta1"}
# What the local server reads and writes; everything they reference comes along.
ROOTS = (
    "TuningJob",
    "ListTuningJobsResponse",
    "CancelTuningJobRequest",
    "GenerateContentRequest",
    "GenerateContentResponse",
    # Pipelines (localvertex/pipelines) and ML Metadata (localvertex/metadata).
    "PipelineJob",
    "ListPipelineJobsResponse",
    "CancelPipelineJobRequest",
    "DeleteOperationMetadata",
    "MetadataStore",
    "ListMetadataStoresResponse",
    "Context",
    "ListContextsResponse",
    "Artifact",
    "ListArtifactsResponse",
    "Execution",
    "ListExecutionsResponse",
    "AddContextChildrenRequest",
    "AddContextChildrenResponse",
    "RemoveContextChildrenRequest",
    "RemoveContextChildrenResponse",
    "AddContextArtifactsAndExecutionsRequest",
    "AddContextArtifactsAndExecutionsResponse",
    "AddExecutionEventsRequest",
    "AddExecutionEventsResponse",
    "LineageSubgraph",
    "PurgeContextsRequest",
    # Schedules (localvertex/pipelines/schedules.py).
    "Schedule",
    "ListSchedulesResponse",
    "PauseScheduleRequest",
    "ResumeScheduleRequest",
)
EXTRA_ROOTS = ("GoogleRpcStatus", "GoogleProtobufEmpty", "GoogleLongrunningOperation")
KEPT_KEYS = ("type", "format", "$ref", "enum", "readOnly")


def discovery(version: str) -> dict:
    return json.loads((HERE / f"aiplatform.{version}.json").read_text(encoding="utf-8"))


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def reachable(schemas: dict, roots: list[str]) -> list[str]:
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(_refs(schemas[name]))
    return sorted(seen)


def proto_messages(version: str) -> dict[str, object]:
    """Discovery schema id -> protobuf message descriptor, for every message in the files
    that google-cloud-aiplatform's ``aiplatform_<version>.types`` loads (and their imports)."""
    import proto

    types = importlib.import_module(f"google.cloud.aiplatform_{version}.types")
    files, stack = {}, []
    for attr in dir(types):
        obj = getattr(types, attr)
        if isinstance(obj, type) and issubclass(obj, proto.Message):
            stack.append(obj.pb().DESCRIPTOR.file)
    while stack:
        f = stack.pop()
        if f.name not in files:
            files[f.name] = f
            stack.extend(f.dependencies)
    out = {}

    def add(desc):
        parts = desc.full_name.split(".")
        package = desc.file.package.split(".")
        camel_package = "".join(p[:1].upper() + p[1:] for p in package)
        out[camel_package + "".join(parts[len(package) :])] = desc
        for nested in desc.nested_types:
            add(nested)

    for f in files.values():
        for desc in f.message_types_by_name.values():
            add(desc)
    return out


def slim(prop: dict) -> dict:
    out = {k: prop[k] for k in KEPT_KEYS if k in prop}
    for key in ("items", "additionalProperties"):
        if key in prop:
            out[key] = slim(prop[key])
    return out


def enum_info(desc, json_name: str, names: list[str]) -> dict:
    """enumNumbers / enumType of field ``json_name`` of proto message ``desc``."""
    if desc is None:
        return {}
    field = next((f for f in desc.fields if f.json_name == json_name), None)
    if field is None or field.enum_type is None:
        return {}
    numbers = {v.name: v.number for v in field.enum_type.values}
    return {"enumType": field.enum_type.full_name, "enumNumbers": {n: numbers[n] for n in names if n in numbers}}


def build(version: str) -> dict:
    doc = discovery(version)
    schemas = doc["schemas"]
    prefix = VERSIONS[version]
    names = reachable(schemas, [prefix + r for r in ROOTS] + list(EXTRA_ROOTS))
    protos = proto_messages(version)
    out = {}
    for name in names:
        schema = schemas[name]
        desc = protos.get(name)
        props = {}
        for field, prop in schema.get("properties", {}).items():
            entry = slim(prop)
            enum_names = prop.get("enum") or prop.get("items", {}).get("enum")
            if enum_names:
                entry.update(enum_info(desc, field, enum_names))
            props[field] = entry
        item = {"type": schema.get("type", "object"), "properties": props}
        required = sorted(
            f for f, p in schema.get("properties", {}).items() if p.get("description", "").startswith("Required.")
        )
        if required:
            item["required"] = required
        if desc is not None:
            item["proto"] = desc.full_name
        out[name] = item
    return {
        "source": f"googleapiclient discovery_cache aiplatform.{version}.json",
        "revision": doc["revision"],
        "version": version,
        "prefix": prefix,
        "schemas": out,
    }


def render(data: dict) -> str:
    return json.dumps(data, indent=0, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the files are up to date")
    args = parser.parse_args(argv)
    stale = []
    for version in VERSIONS:
        path = OUT_DIR / f"aiplatform.{version}.json"
        text = render(build(version))
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path} ({len(text)} bytes)")
    for path in stale:
        print(f"out of date: {path} (run python -m tests.schema.build_subset)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
