"""Per-session settings over HTTP: ``/api/sessions/{id}/config[/{name}]``."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memq.exceptions import InvalidSettingValueError
from memq.worker.routes.common import get_services, json_body, path_session_key
from memq.worker.services import Services
from memq.worker.session_config import ConfigName, SessionConfig, config_name, parse_value


async def get_config(request: Request) -> Response:
    """Every setting of the session: its own and the defaults, and which processor and
    model its next message gets."""
    services = get_services(request)
    key = path_session_key(request)
    config = services.configs.get(key)
    return JSONResponse(
        {
            "session_id": key,
            "config": config.to_dict(),
            "set": services.configs.explicit(key),
            "effective": _effective(services, config),
        }
    )


async def get_setting(request: Request) -> Response:
    services = get_services(request)
    key = path_session_key(request)
    name = config_name(str(request.path_params["name"]))
    return JSONResponse(
        {
            "session_id": key,
            "name": name.value,
            "value": services.configs.get(key).value(name),
            "set": name.value in services.configs.explicit(key),
        }
    )


async def put_setting(request: Request) -> Response:
    """Body ``{"value": ...}``. A processor is created here, so a setting it lacks (an API
    key) is a 422 now rather than a failed message later."""
    services = get_services(request)
    key = path_session_key(request)
    name = config_name(str(request.path_params["name"]))
    body = await json_body(request)
    if "value" not in body:
        raise InvalidSettingValueError('give {"value": ...}')
    value = parse_value(name, body["value"], services.processors.names)
    if isinstance(value, str):
        _check_processor(services, services.configs.get(key), name, value)
    await services.configs.set(key, name, value)
    known = await services.store.has_session(key)
    return JSONResponse({"session_id": key, "name": name.value, "value": value, "known": known})


async def delete_setting(request: Request) -> Response:
    services = get_services(request)
    key = path_session_key(request)
    name = config_name(str(request.path_params["name"]))
    if not await services.configs.delete(key, name):
        raise HTTPException(404, f"{key} has no {name.value!r} setting")
    return JSONResponse(
        {"session_id": key, "name": name.value, "value": services.configs.get(key).value(name)}
    )


def _check_processor(
    services: Services, config: SessionConfig, name: ConfigName, value: str
) -> None:
    """Create the processor the session would get with this setting (refusing the setting
    when that fails)."""
    processor = value if name is ConfigName.PROCESSOR else config.processor
    model = value if name is ConfigName.MODEL else config.model
    try:
        services.processors.get(processor, model)
    except ValueError as exc:
        raise InvalidSettingValueError(str(exc)) from None


def _effective(services: Services, config: SessionConfig) -> dict[str, Any]:
    name = config.processor or services.processors.default.name
    try:
        processor = services.processors.get(name, config.model)
    except ValueError as exc:  # the environment changed since the setting was stored
        return {"processor": name, "model": config.model, "error": str(exc)}
    settings = getattr(processor, "settings", None)  # model-based processors only
    return {"processor": name, "model": getattr(settings, "model", None)}


ROUTES = [
    Route("/api/sessions/{session_id:path}/config", get_config, methods=["GET"]),
    Route("/api/sessions/{session_id:path}/config/{name}", get_setting, methods=["GET"]),
    Route("/api/sessions/{session_id:path}/config/{name}", put_setting, methods=["PUT"]),
    Route("/api/sessions/{session_id:path}/config/{name}", delete_setting, methods=["DELETE"]),
]

__all__ = ["ROUTES"]
