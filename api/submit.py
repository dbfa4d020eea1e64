"""Checking a job request completely before it is queued, and turning it into the worker's spec.

Every problem becomes a `Refused` with an HTTP status and FastAPI-shaped details (`loc`, `msg`, `type`, and for
recipe problems `op` and `param`): unknown operators or parameters, bad values, path escapes, an output folder
that holds another job or that another active job writes. Recipes are data: YAML is parsed safely and
refused if it uses anchors or aliases; a text template may only name fields.
"""

from __future__ import annotations

import string
import threading
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from operators import registry
from operators.registry import IGNORED_DJ_OPTIONS, RecipeError
from steel_data.executor import RunConfig
from steel_data.readers import InputError, TextMapping
from steel_data.recipe import load_recipe

from api.paths import PathPolicy, PathRefused, overlaps
from api.schemas import JobRequest
from api.store import JobStore

PATH_PARAM_SUFFIXES = ("_dir", "_path", "_file")
PATH_PARAMS = {"hf_tokenizer"}  # a tokenizer.json path or hub id: from a client, only a file in the data roots
_submit_lock = threading.Lock()


class Refused(Exception):
    def __init__(self, status: int, errors: list[dict] | str):
        super().__init__(str(errors))
        self.status = status
        self.errors = errors


def _err(loc: list, msg: str, kind: str = "value_error", **extra) -> dict:
    return {"loc": ["body", *loc], "msg": msg, "type": kind, **extra}


def _parse_recipe(recipe: dict | str) -> dict:
    if isinstance(recipe, dict):
        return recipe
    try:
        for event in yaml.parse(recipe, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise Refused(422, [_err(["recipe"], "YAML anchors and aliases are not accepted")])
        data = yaml.safe_load(recipe)
    except yaml.YAMLError as exc:
        raise Refused(422, [_err(["recipe"], f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise Refused(422, [_err(["recipe"], "a recipe is a mapping with a 'process' list")])
    return data


def _confine_params(policy: PathPolicy, name: str, params: dict, loc: list, errors: list) -> dict:
    """Path-valued parameters (`*_dir`, `*_path`, `*_file`, `hf_tokenizer`) are client paths: confine them and
    make them absolute (so no hub id reaches a loader either)."""
    out = dict(params)
    for key, value in params.items():
        if isinstance(value, str) and (key.endswith(PATH_PARAM_SUFFIXES) or key in PATH_PARAMS):
            try:
                out[key] = str(policy.resolve(value))
            except PathRefused as exc:
                errors.append(_err([*loc, key], str(exc), "path_refused", op=name, param=key))
    return out


def _confine_tokenize(policy: PathPolicy, stage: dict, errors: list) -> dict:
    """The recipe's `tokenize:` stage names an output folder (relative: inside the job's output) and a
    tokenizer (a built-in name, or a file that must lie inside the data roots: never a hub download)."""
    from steel_data.tokenize import BUILTINS

    stage = dict(stage)
    out = stage.get("output")
    if isinstance(out, str):
        try:
            if Path(out).is_absolute():
                stage["output"] = str(policy.resolve(out))
            elif ".." in Path(out).parts or not out:
                raise PathRefused(f"{out!r}: a relative tokenize output stays inside the job's output folder")
        except PathRefused as exc:
            errors.append(_err(["recipe", "tokenize", "output"], str(exc), "path_refused", op="tokenize",
                               param="output"))
    tokenizer = stage.get("tokenizer")
    if isinstance(tokenizer, str) and tokenizer not in BUILTINS:
        try:
            stage["tokenizer"] = str(policy.resolve(tokenizer))
        except PathRefused as exc:
            errors.append(_err(["recipe", "tokenize", "tokenizer"], str(exc), "path_refused", op="tokenize",
                               param="tokenizer"))
    return stage


def _op_errors(name: str, params: dict, text_key: str, loc: list) -> list[dict]:
    """Each parameter problem of one operator, as a separate detail naming op and parameter."""
    try:
        cls = registry.get(name)
    except RecipeError as exc:
        return [_err(loc, str(exc), "unknown_operator", op=name, param=None)]
    values = {k: v for k, v in params.items() if k not in IGNORED_DJ_OPTIONS}
    values.setdefault("text_key", text_key)
    try:
        cls.Params(**values)
    except ValidationError as exc:
        out = []
        for e in exc.errors():
            param = str(e["loc"][0]) if e["loc"] else None
            msg = "unknown parameter" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
            out.append(_err([*loc, *map(str, e["loc"])], f"operator {name!r}: parameter {param!r}: {msg}",
                            "invalid_parameter", op=name, param=param))
        return out
    except Exception as exc:  # a validator that raised something other than a validation error
        return [_err(loc, f"operator {name!r}: {exc}", "invalid_parameter", op=name, param=None)]
    return []


def check_recipe(policy: PathPolicy, req: JobRequest) -> tuple[dict, dict]:
    """(recipe dict, overrides) with path parameters confined; raises Refused naming op and parameter."""
    data = _parse_recipe(req.recipe)
    errors: list[dict] = []
    text_key = data.get("text_keys", "text")
    if isinstance(text_key, list) and len(text_key) == 1:
        text_key = text_key[0]
    if not isinstance(text_key, str):
        text_key = "text"
    overrides: dict[str, dict] = {}
    for name, params in req.set.items():
        try:
            registry.get(name)
        except RecipeError as exc:
            errors.append(_err(["set", name], str(exc), "unknown_operator", op=name, param=None))
            continue
        overrides[name] = _confine_params(policy, name, params, ["set", name], errors)
    for i, name in enumerate(req.skip_ops):
        try:
            registry.get(name)
        except RecipeError as exc:
            errors.append(_err(["skip_ops", i], str(exc), "unknown_operator", op=name, param=None))
    if isinstance(data.get("tokenize"), dict):
        data = {**data, "tokenize": _confine_tokenize(policy, data["tokenize"], errors)}
    process = data.get("process")
    if isinstance(process, list):
        new_process = []
        for i, entry in enumerate(process):
            if isinstance(entry, str):
                entry = {entry: {}}
            if not (isinstance(entry, dict) and len(entry) == 1):
                new_process.append(entry)
                continue
            (name, params), = entry.items()
            if not isinstance(params, dict):
                new_process.append(entry)
                continue
            loc = ["recipe", "process", i, str(name)]
            params = _confine_params(policy, str(name), params, loc, errors)
            new_process.append({name: params})
            if name not in req.skip_ops:
                errors += _op_errors(str(name), {**params, **overrides.get(name, {})}, text_key, loc)
        data = {**data, "process": new_process}
    if errors:
        raise Refused(422, errors)
    try:  # the authority: everything load_recipe checks beyond single ops (top-level keys, order, ...)
        load_recipe(data, overrides, set(req.skip_ops))
    except RecipeError as exc:
        raise Refused(422, [_err(["recipe"], str(exc), "recipe_error")]) from None
    except Exception as exc:  # an op that cannot be built with these values
        raise Refused(422, [_err(["recipe"], f"{type(exc).__name__}: {exc}", "recipe_error")]) from None
    return data, overrides


def check_template(template: str | None) -> None:
    if template is None:
        return
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise Refused(422, [_err(["text_template"], f"bad template: {exc}")]) from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise Refused(422, [_err(["text_template"], "a template may only hold {field} placeholders "
                                                        "(plain field names, no format specs or conversions)")])


def build_spec(policy: PathPolicy, store: JobStore, req: JobRequest) -> dict:
    recipe, overrides = check_recipe(policy, req)
    check_template(req.text_template)
    try:
        inputs, _files = policy.inputs(req.inputs)
    except PathRefused as exc:
        raise Refused(422, [_err(["inputs"], str(exc), "path_refused")]) from None
    try:
        output = policy.output(req.output)
    except PathRefused as exc:
        raise Refused(422, [_err(["output"], str(exc), "path_refused")]) from None
    for raw, path in zip(req.inputs, inputs):
        if overlaps(Path(path), output):
            raise Refused(422, [_err(["output"], f"the output folder overlaps the input {raw!r}", "path_refused")])
    spec = {"recipe": recipe, "overrides": overrides, "skip_ops": list(req.skip_ops), "inputs": inputs,
            "output": str(output), "text_key": req.text_key, "text_template": req.text_template,
            "shard_size": req.shard_size, "format": req.format, "workers": req.workers, "overwrite": req.overwrite}
    if not req.overwrite:
        _check_same_job(spec, output)
    return spec


def _check_same_job(spec: dict, output: Path) -> None:
    """An output folder holding an unfinished or finished run of another job is refused before queuing
    (the executor would refuse it too, but only once the job runs)."""
    plan = output / "_work" / "plan.json"  # written by steel_data.executor.LocalExecutor.prepare
    if not plan.is_file():
        return
    try:
        previous = orjson.loads(plan.read_bytes()).get("job")
        recipe = load_recipe(spec["recipe"], spec["overrides"], set(spec["skip_ops"]))
        mapping = TextMapping(text_key=recipe.text_key, source_key=spec["text_key"], template=spec["text_template"])
    except (orjson.JSONDecodeError, AttributeError, InputError, RecipeError):
        return
    config = RunConfig(recipe=recipe, inputs=spec["inputs"], outdir=output, mapping=mapping,
                       shard_size=spec["shard_size"], output_format=spec["format"])
    if previous != config.fingerprint():
        raise Refused(409, "the output folder holds the output of a different job (recipe, inputs or options "
                           "differ); choose another folder or set overwrite")


def submit(policy: PathPolicy, store: JobStore, req: JobRequest) -> Any:
    spec = build_spec(policy, store, req)
    output = Path(spec["output"])
    with _submit_lock:  # check-and-insert, so two requests cannot claim one output folder
        for job in store.active():
            if overlaps(Path(job.output), output):
                raise Refused(409, f"job {job.id} ({job.state}) writes to an overlapping output folder; "
                                   "wait for it or cancel it")
        return store.create(req.model_dump(mode="json"), spec, str(output), name=req.name)

