"""Per-session settings over HTTP: ``/api/sessions/{id}/config[/{name}]``.

Only a session memq knows (memory, queued events or settings) can be configured: a typo must
not create a session nobody sends events to. ``PUT`` with ``"create": true`` configures a
session ahead of its first event.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.exceptions import InvalidSettingValueError, SessionNotFoundError, SettingNotSetError
from memq.worker.http.params import path_session_key
from memq.worker.http.request import get_services, read_json
from memq.worker.services import Services
from memq.worker.session_config import ConfigName, SessionConfig, config_name, parse_value
from memq.worker.session_pauses import SessionPauses


async def get_config(request: Request) -> Response:
    """Every setting of the session: its own and the defaults, which processor and model
    its next message gets, and why it waits when it is paused."""
    services = get_services(request)
    key = await _known_session(request, services)
    config = services.configs.get(key)
    pause = SessionPauses(services.configs, services.processors).of(key)
    return JSONResponse(
        {
            "session_id": key,
            "config": config.to_dict(),
            "set": services.configs.explicit(key),
            "effective": _effective(services, config),
            "pause": None if pause is None else pause.to_dict(),
        }
    )


async def get_setting(request: Request) -> Response:
    """One setting of the session, and whether the session set it."""
    services = get_services(request)
    key = await _known_session(request, services)
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
    """Body ``{"value": ..., "create": false}``. A processor is created here, so a setting
    it lacks (an API key) is a 422 now rather than a paused session later. A session memq
    does not know is a 404 unless ``create`` is true."""
    services = get_services(request)
    key = path_session_key(request)
    name = config_name(str(request.path_params["name"]))
    body = await read_json(request)
    if "value" not in body:
        raise InvalidSettingValueError('give {"value": ...}')
    create = body.get("create", False)
    if not isinstance(create, bool):
        raise InvalidSettingValueError('"create" must be true or false')
    value = parse_value(name, body["value"], services.processors.names)
    if not create and not await services.configs.is_known(key):
        raise _unknown(key)
    if isinstance(value, str):
        _check_processor(services, services.configs.get(key), name, value)
    await services.configs.set(key, name, value)
    known = await services.store.has_session(key)
    return JSONResponse({"session_id": key, "name": name.value, "value": value, "known": known})


async def delete_setting(request: Request) -> Response:
    """Drop the session's own value of a setting: the default applies again."""
    services = get_services(request)
    key = path_session_key(request)
    name = config_name(str(request.path_params["name"]))
    if not await services.configs.delete(key, name):
        raise SettingNotSetError(f"{key} has no {name.value!r} setting")
    return JSONResponse(
        {"session_id": key, "name": name.value, "value": services.configs.get(key).value(name)}
    )


async def _known_session(request: Request, services: Services) -> str:
    """The session the path names; 404 when memq does not know it."""
    key = path_session_key(request)
    if not await services.configs.is_known(key):
        raise _unknown(key)
    return key


def _unknown(key: str) -> SessionNotFoundError:
    return SessionNotFoundError(
        f"no session {key}: memq has no events, memory or settings for it (to configure it "
        f'before its first event, create it: memq config --create, or "create": true)',
    )


def _check_processor(
    services: Services, config: SessionConfig, name: ConfigName, value: str
) -> None:
    """Create the processor the session would get with this setting (refusing the setting
    when that fails)."""
    processor = value if name is ConfigName.PROCESSOR else config.processor
    model = value if name is ConfigName.MODEL else config.model
    reason = services.processors.unavailable(processor, model)
    if reason is not None:
        raise InvalidSettingValueError(reason)


def _effective(services: Services, config: SessionConfig) -> dict[str, Any]:
    """The processor and model the session's next message gets (the model as the processor
    was configured, when it could be; ``pause`` says when it cannot)."""
    name = config.processor or services.processors.default.name
    if services.processors.unavailable(name, config.model) is not None:
        return {"processor": name, "model": config.model}
    settings = getattr(services.processors.get(name, config.model), "settings", None)
    return {"processor": name, "model": getattr(settings, "model", None)}
