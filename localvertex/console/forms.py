"""Posted forms, parsed with the standard library: Starlette's own parser needs the
python-multipart package, which the project does not install (the registry's upload route
parses multipart the same way). The server's body-size limit applies before this runs."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP

from fastapi import Request


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


class Form(dict):
    """Text fields (name -> last value; ``getlist`` for every value) and uploaded files."""

    def __init__(self) -> None:
        super().__init__()
        self.lists: dict[str, list[str]] = {}
        self.files: dict[str, Upload] = {}

    def add(self, name: str, value: str) -> None:
        self.lists.setdefault(name, []).append(value)
        self[name] = value

    def getlist(self, name: str) -> list[str]:
        return self.lists.get(name, [])


async def read_form(request: Request) -> Form:
    """The request's form, parsed once per request (the guard reads it for the CSRF token,
    the handler for its fields)."""
    cached = getattr(request.state, "console_form", None)
    if cached is not None:
        return cached
    form = Form()
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            data = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                if data:
                    form.files[name] = Upload(filename, data)
            else:
                form.add(name, data.decode("utf-8", "replace"))
    else:
        for name, value in urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            form.add(name, value)
    request.state.console_form = form
    return form
