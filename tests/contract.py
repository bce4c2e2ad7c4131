"""Every answer the test suite receives is held to the OpenAPI document (tests/conftest.py wires it in).

The document is the one the service serves at /schema/. For a request to a documented operation,
the answer's status must be documented for it, its content type must be the documented one, and
its body must validate against the documented schema with unknown properties forbidden (the
published document leaves objects open, so that adding a field is not a breaking change for
clients; here every object is closed, so the document cannot fall behind the output).
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import zstandard
from drf_spectacular.generators import SchemaGenerator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    pattern: re.Pattern[str]
    responses: dict[str, Any]


class ContractViolation(AssertionError):
    pass


def _json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 Schema Object as JSON Schema 2020-12, every object closed."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _json_schema(value) for key, value in schema.items()
           if key not in ("nullable", "example", "discriminator")}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "urn:schema:")
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    if schema.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if schema.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resources = [
            (f"urn:schema:{name}", Resource.from_contents(_json_schema(schema), default_specification=DRAFT202012))
            for name, schema in document["components"]["schemas"].items()
        ]
        self.registry: Registry[Any] = Registry().with_resources(resources)
        self.operations = list(self._operations())

    def _operations(self) -> Iterator[Operation]:
        for path, methods in self.document["paths"].items():
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")) + "$")
            for method, operation in methods.items():
                yield Operation(method.upper(), path, pattern, operation["responses"])

    def operation_for(self, method: str, path: str) -> Operation | None:
        for operation in self.operations:
            if operation.method == method.upper() and operation.pattern.match(path):
                return operation
        return None

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        """Raises ContractViolation when a documented operation answered outside its document."""
        operation = self.operation_for(method, path)
        if operation is None or 300 <= status < 400:
            return  # not an API operation (admin, static files, unknown paths), or the HTTPS redirect
        where = f"{method} {path} -> {status}"
        response = operation.responses.get(str(status))
        if response is None:
            raise ContractViolation(f"{where}: status not documented ({sorted(operation.responses)})")
        content = response.get("content")
        if not content:
            if body:
                raise ContractViolation(f"{where}: documented without a body, answered {body[:200]!r}")
            return
        media_type = content_type.split(";")[0].strip()
        if media_type not in content:
            raise ContractViolation(f"{where}: content type {media_type!r}, documented {sorted(content)}")
        schema = content[media_type].get("schema")
        if schema is None or not media_type.endswith("json"):
            return  # a text answer (/metrics) has no JSON to validate
        try:
            instance = json.loads(body)
        except ValueError as error:
            raise ContractViolation(f"{where}: not JSON ({error})") from None
        validator = jsonschema.Draft202012Validator(
            _json_schema(copy.deepcopy(schema)), registry=self.registry, format_checker=_FORMAT_CHECKER
        )
        errors = sorted(validator.iter_errors(instance), key=lambda error: list(error.absolute_path))
        if errors:
            details = "; ".join(
                f"at {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message[:300]}" for error in errors[:5]
            )
            raise ContractViolation(f"{where}: the body does not match the document: {details}")


def decoded(content_encoding: str | None, body: bytes) -> bytes:
    """An answer's body without its content coding (zstd: every concatenated frame)."""
    if content_encoding == "gzip":
        return gzip.decompress(body)
    if content_encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(body) if body else body
    return body


_GENERATING = threading.Lock()


@functools.cache
def _generated() -> Contract:
    return Contract(SchemaGenerator().get_schema(request=None, public=True))


def contract() -> Contract:
    """The contract of the document /schema/ serves (generated once per test session).

    Under a lock: tests that race requests in threads check their answers from those threads,
    and drf-spectacular's generation is not safe to run twice at once."""
    with _GENERATING:
        return _generated()
