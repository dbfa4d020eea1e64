"""/v1/ops: the registered operators and the JSON Schema of their parameters."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from operators import registry
from operators.registry import RecipeError

from api.deps import require_read
from api.schemas import ErrorDetail, OpInfo, OpList

router = APIRouter(prefix="/v1/ops", tags=["operators"], dependencies=[Depends(require_read)])


def _info(name: str) -> OpInfo:
    i = registry.info(name)
    return OpInfo(name=i.name, kind=i.kind, summary=i.summary, stat_key=i.stat_key, params_schema=i.params_schema)


@router.get("", response_model=OpList, responses={401: {"model": ErrorDetail}}, summary="All operators")
def list_ops() -> OpList:
    return OpList(ops=[_info(n) for n in registry.names()])


@router.get("/{name}", response_model=OpInfo, responses={401: {"model": ErrorDetail}, 404: {"model": ErrorDetail}},
            summary="One operator")
def get_op(name: str) -> OpInfo:
    try:
        return _info(name)
    except RecipeError:
        raise HTTPException(404, f"no operator {name!r}") from None
