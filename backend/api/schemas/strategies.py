"""API shapes of the strategies route: each strategy and its parameters."""

from typing import Literal

from pydantic import BaseModel


class ParameterPublic(BaseModel):
    name: str
    type: Literal["int", "float"]
    default: int | float
    min: int | float | None
    max: int | float | None
    description: str


class StrategyPublic(BaseModel):
    name: str
    description: str
    parameters: list[ParameterPublic]
