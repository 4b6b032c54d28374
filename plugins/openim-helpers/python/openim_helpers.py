"""Helpers for callback-host plugins in Python: the answers every plugin writes, "no changes",
and the text of a text message. Put this file beside your app.py (componentize-py finds it on
the path, `-p DIR`); plugins written without it keep working.
"""

import dataclasses
import json
from typing import Optional, Type, TypeVar

from wit_world.imports import log
from wit_world.imports.types import Response

# OpenIM's content type of a text message (its content is {"content": "..."}).
TEXT = 101

T = TypeVar("T")


def go_on() -> Response:
    """The operation proceeds."""
    return Response(action_code=0, err_code=0, err_msg="", err_dlt="", next_code=0)


def refuse(err_code: int, err_msg: str, err_dlt: str = "") -> Response:
    """A refusal: OpenIM hands err_code, err_msg and err_dlt to its caller (only action_code 0
    with next_code 1 refuses)."""
    return Response(action_code=0, err_code=err_code, err_msg=err_msg, err_dlt=err_dlt, next_code=1)


def no_changes(changes: Type[T], **set_fields) -> T:
    """A command's `Changes` with every field None (unchanged), but those given."""
    fields = {field.name: None for field in dataclasses.fields(changes)}
    unknown = set(set_fields) - set(fields)
    if unknown:
        raise TypeError(f"{changes.__name__} has no field {', '.join(sorted(unknown))}")
    fields.update(set_fields)
    return changes(**fields)


def text_of(content_type: int, content: str) -> Optional[str]:
    """The text of a message, when it is a text message."""
    if content_type != TEXT:
        return None
    try:
        text = json.loads(content).get("content")
    except (ValueError, AttributeError):
        return None
    return text if isinstance(text, str) else None


def info(message: str, **fields) -> None:
    """A line in the host's log, fields as keyword arguments."""
    log.log(log.Level.INFO, message, [(k, str(v)) for k, v in fields.items()])


def warn(message: str, **fields) -> None:
    log.log(log.Level.WARN, message, [(k, str(v)) for k, v in fields.items()])
