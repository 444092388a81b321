"""The strategies a workflow can run, with their parameter specifications."""

from dataclasses import asdict
from typing import Annotated, Literal

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from backend.containers import Container
from backend.workflows.strategies import StrategyRegistry

router = APIRouter(prefix="/api", tags=["strategies"])


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


@router.get("/strategies", response_model=list[StrategyPublic])
@inject
def list_strategies(
    strategies: Annotated[StrategyRegistry, Depends(Provide[Container.strategies])],
) -> list[StrategyPublic]:
    """Every strategy with the name, type, default and range of each parameter."""
    return [
        StrategyPublic(
            name=strategy.name,
            description=strategy.description,
            parameters=[ParameterPublic(**asdict(spec)) for spec in strategy.parameters],
        )
        for strategy in strategies.all()
    ]
