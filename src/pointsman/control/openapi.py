"""The OpenAPI 3.1 description of the leader's admin API.

Served at ``GET /openapi.json`` and committed as ``docs/openapi.json``
(``python -m pointsman.control.openapi > docs/openapi.json`` regenerates it;
a test fails when the two differ).
"""

from __future__ import annotations

import json
from typing import Any

from pointsman import __version__

__all__ = ["OPENAPI"]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_OBJECT: dict[str, Any] = {"type": "object"}
_ERROR = _json({"$ref": "#/components/schemas/Error"}, "refused; the body says why")
_UNAUTHORIZED = {"401": _json({"$ref": "#/components/schemas/Error"},
                              "no or wrong bearer token")}

_REGISTRATION = {
    "type": "object",
    "description": "gorouter's router.register body",
    "required": ["host", "uris"],
    "properties": {
        "host": {"type": "string"}, "port": {"type": "integer"},
        "tls_port": {"type": "integer"},
        "uris": {"type": "array", "items": {"type": "string"}},
        "app": {"type": "string"}, "private_instance_id": {"type": "string"},
        "stale_threshold_in_seconds": {"type": "integer"},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "options": {"type": "object",
                    "properties": {"loadbalancing": {"enum": ["round-robin",
                                                              "least-connection"]}}},
    },
}


def _get(summary: str, schema: dict[str, Any], public: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary,
                                 "responses": {"200": _json(schema, "ok")}}
    if public:
        operation["security"] = []
    else:
        operation["responses"].update(_UNAUTHORIZED)
    return {"get": operation}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "pointsman admin API",
        "version": __version__,
        "description": "Served by the leader process on [admin] listen (loopback by "
                       "default). Every operation but /health, /openapi.json and the "
                       "dashboard needs 'Authorization: Bearer TOKEN' ([admin] token or "
                       "POINTSMAN_ADMIN_TOKEN). With [admin] status_user and "
                       "status_password, HTTP Basic auth may also read (GET, HEAD).",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                            "status": {"type": "http", "scheme": "basic",
                                       "description": "read-only: GET and HEAD"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
            "Registration": _REGISTRATION,
            "Status": {"type": "object", "properties": {
                "pid": {"type": "integer"}, "version": {"type": "string"},
                "uptime": {"type": "number"}, "generation": {"type": "integer"},
                "reloads": {"type": "integer"},
                "listeners": {"type": "object",
                              "additionalProperties": {"type": "array",
                                                       "items": {"type": "string"}}},
                "workers": {"type": "array", "items": {"type": "object", "properties": {
                    "pid": {"type": "integer"}, "slot": {"type": "integer"},
                    "generation": {"type": "integer"}, "ready": {"type": "boolean"},
                    "retiring": {"type": "boolean"}, "uptime": {"type": "number"},
                    "active": {"type": "object"}}}},
            }},
            "Stats": {"type": "object", "properties": {
                "time": {"type": "number"}, "workers": {"type": "integer"},
                "requests": {"type": "object", "additionalProperties": {"type": "integer"}},
                "errors": {"type": "object", "additionalProperties": {"type": "integer"}},
                "active": {"type": "object", "additionalProperties": {"type": "integer"}},
                "routes": {"type": "integer"}}},
            "Endpoint": {"type": "object", "properties": {
                "address": {"type": "string"}, "healthy": {"type": "boolean"},
                "draining": {"type": "boolean"}, "active": {"type": "integer"},
                "total": {"type": "integer"}, "fails": {"type": "integer"}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/health": {"get": {"summary": "Liveness: 200 while serving, 503 once stopping",
                            "security": [],
                            "responses": {"200": {"description": "serving"},
                                          "503": {"description": "stopping"}}}},
        "/openapi.json": _get("This document", _OBJECT, public=True),
        "/status": _get("The leader, its workers and listeners",
                        {"$ref": "#/components/schemas/Status"}),
        "/stats": _get("Per-listener request/error totals and open connections",
                       {"$ref": "#/components/schemas/Stats"}),
        "/config": _get("The running config, secrets replaced by '***'", _OBJECT),
        "/metrics": {"get": {"summary": "Prometheus exposition summed over all workers",
                             "responses": {"200": {"description": "text format 0.0.4",
                                                   "content": {"text/plain": {}}},
                                           **_UNAUTHORIZED}}},
        "/routes": {
            "get": {"summary": "The route registry, gorouter's /routes shape; with "
                               "?workers=1, each worker's own route keys",
                    "parameters": [{"name": "workers", "in": "query", "required": False,
                                    "schema": {"type": "string"}}],
                    "responses": {"200": _json({"type": "object", "additionalProperties": {
                        "type": "array", "items": _OBJECT}}, "uri -> endpoints"),
                        **_UNAUTHORIZED}},
            "post": {"summary": "Register an endpoint under uris (every worker; persisted)",
                     "requestBody": _json({"$ref": "#/components/schemas/Registration"},
                                          "a router.register body"),
                     "responses": {"200": _json(_OBJECT, "applied"), "400": _ERROR,
                                   "409": _ERROR, **_UNAUTHORIZED}},
            "delete": {"summary": "Unregister an endpoint (every worker; persisted)",
                       "requestBody": _json({"$ref": "#/components/schemas/Registration"},
                                            "a router.unregister body"),
                       "responses": {"200": _json(_OBJECT, "removed"), "400": _ERROR,
                                     "404": _ERROR, "409": _ERROR, **_UNAUTHORIZED}},
        },
        "/upstreams": _get("Each upstream endpoint's health and counters, summed over workers",
                           {"type": "object", "additionalProperties": {
                               "type": "array",
                               "items": {"$ref": "#/components/schemas/Endpoint"}}}),
        "/drain": {"post": {
            "summary": "Stop sending new connections or requests to one endpoint of an "
                       "upstream or of an HTTP route key; in-flight ones finish "
                       "(or resume: drain=false)",
            "requestBody": _json({"type": "object", "required": ["endpoint"],
                                  "oneOf": [{"required": ["upstream"]},
                                            {"required": ["route"]}],
                                  "properties": {"upstream": {"type": "string"},
                                                 "route": {"type": "string",
                                                           "description": "a route key, "
                                                           "e.g. api.example.com/v1"},
                                                 "endpoint": {"type": "string"},
                                                 "drain": {"type": "boolean",
                                                           "default": True}}},
                                 "which endpoint"),
            "responses": {"200": _json(_OBJECT, "applied in every worker; persisted"),
                          "400": _ERROR, "404": _ERROR, **_UNAUTHORIZED}}},
        "/workers/{name}": {"get": {
            "summary": "Every worker's answer to a named question (upstreams, connections, "
                       "routes, and what subsystems register: gateway, provision, ...)",
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "array", "items": _OBJECT}, "one per worker"),
                          "404": _ERROR, **_UNAUTHORIZED}}},
        "/connections": _get("Open connections per listener and a sample of them", _OBJECT),
        "/reload": {"post": {
            "summary": "Reload the config file, as SIGHUP; a broken file is refused",
            "responses": {"200": _json(_OBJECT, "reloaded"),
                          "422": _json({"type": "object", "properties": {
                              "ok": {"const": False},
                              "errors": {"type": "array", "items": {"type": "string"}}}},
                              "refused; the running config stays"),
                          **_UNAUTHORIZED}}},
        "/": {"get": {"summary": "The dashboard (HTML; asks for the token)", "security": [],
                      "responses": {"200": {"description": "text/html"}}}},
    },
}

if __name__ == "__main__":
    print(json.dumps(OPENAPI, indent=2, sort_keys=True))
