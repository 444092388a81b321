"""The strategies a workflow can run, with their parameter specifications."""

from dataclasses import asdict
from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends

from backend.api.schemas.strategies import ParameterPublic, StrategyPublic
from backend.containers import Container
from backend.workflows.strategies import StrategyRegistry

router = APIRouter(prefix="/api", tags=["strategies"])


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
