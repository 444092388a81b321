"""API models that show an internal record as it is, built from the record's own fields.

The record stays the one list of its fields: a field added to it reaches the API, the OpenAPI
schema and the UI's generated types without a second list to keep in step.
"""

import dataclasses
from typing import get_type_hints

from pydantic import BaseModel, create_model


def model_of(name: str, record: type, doc: str | None = None) -> type[BaseModel]:
    """A model named `name` with every field of the dataclass `record`, each required, in order.

    `doc` is the schema's description; without it the schema has none, as a model without a
    docstring would.
    """
    # The records use `from __future__ import annotations`: their field types are strings.
    types = get_type_hints(record)
    fields = {field.name: (types[field.name], ...) for field in dataclasses.fields(record)}
    return create_model(name, __doc__=doc, **fields)
