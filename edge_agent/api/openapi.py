"""The OpenAPI 3 description of the local API (served at /v2/openapi.json, fuzzed in tests)."""

from __future__ import annotations

from typing import Any

from edge_agent import __version__
from edge_agent.api.protocol import DATATYPES

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_TENSOR_META = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
    },
}
_REQUEST_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "parameters": {"type": "object"},
        "data": {"type": "array", "items": {}},
    },
}
_RESPONSE_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "parameters": {"type": "object"},
        "data": {"type": "array", "items": {}},
    },
}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed request or inputs that do not fit the model",
        404: "Unknown model or version",
        405: "Method not allowed",
        411: "Length required",
        413: "Request body too large",
        503: "The model could not run",
    }
    return {str(code): _json_response(reasons[code], _ERROR) for code in codes}


def openapi_spec(model_names: list[str] | None = None) -> dict[str, Any]:
    """The spec as a dict; ``model_names`` (the models served now) become the path's enum."""
    name_schema: dict[str, Any] = {"type": "string"}
    if model_names:
        name_schema["enum"] = list(model_names)
    name = {"name": "name", "in": "path", "required": True, "schema": name_schema}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    metadata = _json_response(
        "Model metadata",
        {
            "type": "object",
            "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": _TENSOR_META},
                "outputs": {"type": "array", "items": _TENSOR_META},
            },
        },
    )
    ready = _json_response("Model is ready", {"type": "object"})
    infer_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": _REQUEST_TENSOR, "minItems": 1},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "parameters": {"type": "object"},
                                },
                            },
                        },
                    },
                }
            }
        },
    }
    infer_ok = {
        "description": "Inference result (JSON, or JSON + binary tensors when "
        "Inference-Header-Content-Length is set)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model_name", "outputs"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "outputs": {"type": "array", "items": _RESPONSE_TENSOR},
                    },
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    infer = {
        "requestBody": infer_body,
        "responses": {"200": infer_ok, **_errors(400, 404, 411, 413, 503)},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "edge-agent local inference API (Open Inference Protocol v2)",
            "version": __version__,
        },
        "paths": {
            "/v2/health/live": {
                "get": {
                    "responses": {
                        "200": _json_response("The agent process is alive", {"type": "object"})
                    }
                }
            },
            "/v2/health/ready": {
                "get": {
                    "responses": {
                        "200": _json_response("Every model is loaded", {"type": "object"}),
                        "503": _json_response("Not ready yet", {"type": "object"}),
                    }
                }
            },
            "/v2": {
                "get": {"responses": {"200": _json_response("Server metadata", {"type": "object"})}}
            },
            "/v2/models/{name}": {
                "parameters": [name],
                "get": {"responses": {"200": metadata, **_errors(404)}},
            },
            "/v2/models/{name}/versions/{version}": {
                "parameters": [name, version],
                "get": {"responses": {"200": metadata, **_errors(404)}},
            },
            "/v2/models/{name}/ready": {
                "parameters": [name],
                "get": {"responses": {"200": ready, **_errors(404)}},
            },
            "/v2/models/{name}/versions/{version}/ready": {
                "parameters": [name, version],
                "get": {"responses": {"200": ready, **_errors(404)}},
            },
            "/v2/models/{name}/infer": {"parameters": [name], "post": infer},
            "/v2/models/{name}/versions/{version}/infer": {
                "parameters": [name, version],
                "post": infer,
            },
            "/v2/repository/index": {
                "post": {
                    "responses": {
                        "200": _json_response(
                            "Models and their state", {"type": "array", "items": {"type": "object"}}
                        )
                    }
                }
            },
            "/metrics": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "Prometheus metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    }
                }
            },
        },
    }
