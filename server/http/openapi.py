"""The error answers every API route can give, documented once for the whole OpenAPI.

Routes document their own success answers and the errors particular to them; the ones
below come from shared layers (authentication, project scoping, the body-limit
middleware, the database error mapping in errors.py) and are added to every operation
under the API prefix, with the `{"detail": "..."}` body they all share.
"""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["document_error_answers", "ERROR_MESSAGE"]

ERROR_MESSAGE = {
    "title": "ErrorMessage",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}
_REF = {"$ref": "#/components/schemas/ErrorMessage"}

# Any operation: whether the request parses, who is calling, what they may see, and
# whether the database answers.
ANY_OPERATION = {
    "400": "the request cannot be parsed: a URL over about 64 KiB is refused by the HTTP layer "
           "(in plain text), a body that is not valid JSON, UTF-8 or gzip by the server",
    "401": "no token, or an unknown or revoked one, on a server that needs tokens",
    "403": "the token's project is not this one, or the token is read-only",
    "404": "no such run, project or object",
    "429": "too many requests for this token; retry after Retry-After seconds",
    "503": "database unavailable; retry after Retry-After seconds",
}
# Operations that take a body, which the middleware reads before any route does.
WITH_BODY = {
    "409": "conflicts with stored data",
    "413": "the body, or a part of it, is over a size limit",
    "415": "Content-Type or Content-Encoding not accepted",
}
WRITES = {"post", "put", "patch", "delete"}


def document_error_answers(app: FastAPI, prefix: str) -> None:
    """Wrap app.openapi so the spec it builds documents the shared error answers."""
    build = app.openapi

    def openapi() -> dict:
        spec = build()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        if "ErrorMessage" not in schemas:
            schemas["ErrorMessage"] = ERROR_MESSAGE
            _widen_validation_detail(schemas)
            for path, operations in spec.get("paths", {}).items():
                if path.startswith(prefix):
                    for method, operation in operations.items():
                        _add_errors(method, operation)
        return spec

    app.openapi = openapi


def _add_errors(method: str, operation: dict) -> None:
    codes = dict(ANY_OPERATION)
    if method in WRITES:
        codes.update(WITH_BODY)
    responses = operation.setdefault("responses", {})
    for code, description in codes.items():
        # A route's own wording wins; the body is the shared one either way.
        answer = responses.setdefault(code, {"description": description})
        answer.setdefault("content", {"application/json": {"schema": _REF}})
        if code == "400":
            answer["content"]["text/plain"] = {"schema": {"type": "string"}}


def _widen_validation_detail(schemas: dict) -> None:
    # A 422 is pydantic's list of errors or, from a check inside a route, one sentence.
    validation = schemas.get("HTTPValidationError")
    if validation is not None:
        detail = validation["properties"]["detail"]
        validation["properties"]["detail"] = {
            "title": detail.get("title", "Detail"),
            "anyOf": [{k: v for k, v in detail.items() if k != "title"}, {"type": "string"}],
        }
