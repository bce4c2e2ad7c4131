"""The OpenAPI document: schemas derived from the declared shapes, and the problem responses.

Views name a shape with `Shape(T)` in `@extend_schema(request=..., responses=...)`;
`ShapeExtension` (a drf-spectacular serializer extension) turns it into an OpenAPI 3.0 Schema
Object, and every dataclass, TypedDict and named enum it reaches into a component of its own name.
Field descriptions, examples and bounds come from each field's `Meta` (dpm_async/shapes.py); an
object's description is its docstring. Nothing here names a field: a field added to a shape is
documented as declared.

Request and response shapes differ in one wire rule: an input `Decimal` is a JSON string or number
(`anyOf`), while answers carry decimals as strings.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAliasType, get_args, get_origin

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from dpm_async.decimals import (
    DECIMAL_MAX_DIGITS,
    DECIMAL_MAX_STRING_LENGTH,
    DECIMAL_MIN_EXPONENT,
    DECIMAL_STRING_PATTERN,
    LARGEST_BELOW_LIMIT,
)
from dpm_async.problems import PROBLEM_CONTENT_TYPE, ProblemBody
from dpm_async.shapes import (
    NO_META,
    Meta,
    description,
    is_shape,
    literal_values,
    optional_inner,
    shape_fields,
    union_members,
    unwrap,
)

Schema = dict[str, Any]
REF_PREFIX = "#/components/schemas/"

_INPUT_DECIMAL_DESCRIPTION = "Decimal as a JSON string (preferred, keeps its scale) or a JSON number."


# Examples of whole shapes, shown on their components (registered with `shape_example`).
_EXAMPLES: dict[type, Any] = {}


def shape_example(cls: type, example: Any) -> None:
    """Shows `example` on the component of `cls` (a test validates each against the document)."""
    _EXAMPLES[cls] = example


class Shape:
    """A declared shape as an `@extend_schema` request or response (see ShapeExtension).

    Equal for equal types: the same shape reached from several views is one component.
    """

    def __init__(self, annotation: type) -> None:
        self.annotation = annotation

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Shape) and other.annotation is self.annotation

    def __hash__(self) -> int:
        return hash(self.annotation)


class ShapeExtension(OpenApiSerializerExtension):
    """Documents a `Shape`: its schema becomes the component named after it, and every shape and
    named enum it reaches becomes a component too."""

    target_class = Shape

    def get_name(self, auto_schema: AutoSchema, direction: str) -> str:
        return str(self.target.annotation.__name__)

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> Schema:
        components = Components()
        schema = components.object_schema(self.target.annotation)
        for name, (identity, component) in components.schemas.items():
            if name != self.get_name(auto_schema, direction):
                auto_schema.registry.register_on_missing(
                    ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=identity, schema=component)
                )
        return schema


class Components:
    """Derives Schema Objects, collecting the components they refer to in `schemas`."""

    def __init__(self) -> None:
        # name -> (what it stands for, its schema)
        self.schemas: dict[str, tuple[object, Schema]] = {}

    def ref(self, name: str) -> Schema:
        return {"$ref": REF_PREFIX + name}

    def object_schema(self, cls: type) -> Schema:
        """A dataclass's or TypedDict's own Schema Object (properties, required, description)."""
        properties = {}
        required = []
        for field in shape_fields(cls):
            properties[field.name] = self.schema(field.type, field.meta)
            if field.required:
                required.append(field.name)
            elif field.default_factory is None:
                properties[field.name] = _with(properties[field.name], default=field.default)
        schema: Schema = {"type": "object"}
        if (text := description(cls)) is not None:
            schema["description"] = text
        schema["properties"] = properties
        if required:
            schema["required"] = required
        if cls in _EXAMPLES:
            schema["example"] = _EXAMPLES[cls]
        return schema

    def schema(self, annotation: Any, meta: Meta = NO_META) -> Schema:
        """The Schema Object of a field's type, with its Meta's bounds and words."""
        annotation, meta = unwrap(annotation, meta)
        inner = optional_inner(annotation)
        if inner is not None:
            return _with(self.schema(inner, meta), nullable=True)
        schema = self._bare(annotation, meta)
        if annotation is Decimal:
            return schema  # its description already says it all
        words = {"description": meta.description, "example": meta.example}
        return _with(schema, **{key: value for key, value in words.items() if value is not None})

    def _bare(self, annotation: Any, meta: Meta) -> Schema:
        if is_shape(annotation):
            name = annotation.__name__
            if name not in self.schemas:
                self.schemas[name] = (Shape(annotation), {})  # reserved first: shapes may refer to themselves
                self.schemas[name] = (Shape(annotation), self.object_schema(annotation))
            return self.ref(name)
        if isinstance(annotation, TypeAliasType) and literal_values(annotation) is not None:
            return self._enum(annotation.__name__, literal_values(annotation) or ())
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return self._enum(annotation.__name__, tuple(member.value for member in annotation))
        values = literal_values(annotation)
        if values is not None:
            return {"type": "string", "enum": list(values)}
        members = union_members(annotation)
        if members is not None:
            return self._one_of(members)
        if annotation is str:
            return _drop_none({"type": "string", "format": meta.format, "minLength": meta.min_length,
                               "maxLength": meta.max_length, "pattern": meta.pattern})
        if annotation is bool:
            return {"type": "boolean"}
        if annotation is int:
            return _drop_none({"type": "integer", **_bounds(meta)})
        if annotation is Decimal:
            return self._input_decimal(meta)
        if annotation is datetime:
            return {"type": "string", "format": "date-time"}
        if annotation is Any or annotation is object:
            return {}
        origin, arguments = get_origin(annotation), get_args(annotation)
        if origin is list:
            return _drop_none({"type": "array", "items": self.schema(arguments[0]),
                               "minItems": meta.min_length, "maxItems": meta.max_length})
        if origin is dict:
            values_schema = self.schema(arguments[1])
            schema = {"type": "object", "additionalProperties": values_schema} if values_schema else {"type": "object"}
            return _drop_none({**schema, "minProperties": meta.min_length, "maxProperties": meta.max_length})
        raise TypeError(f"no OpenAPI schema for {annotation!r}")

    def _enum(self, name: str, values: tuple[Any, ...]) -> Schema:
        self.schemas.setdefault(name, (name, {"type": "string", "enum": list(values)}))
        return self.ref(name)

    def _one_of(self, members: tuple[Any, ...]) -> Schema:
        """A union of shapes; told apart by the one field every member fixes to a single literal."""
        schema: Schema = {"oneOf": [self.schema(member) for member in members]}
        if all(is_shape(member) for member in members):
            for candidate in shape_fields(members[0]):
                tags = [_single_literal(member, candidate.name) for member in members]
                if all(tag is not None for tag in tags):
                    schema["discriminator"] = {
                        "propertyName": candidate.name,
                        "mapping": {tag: REF_PREFIX + member.__name__ for tag, member in zip(tags, members, strict=True)},
                    }
                    break
        return schema

    def _input_decimal(self, meta: Meta) -> Schema:
        # Inclusive bounds only: exclusiveMinimum is a flag in OpenAPI 3.0, a number in JSON Schema.
        number: Schema = {"type": "number", "minimum": -LARGEST_BELOW_LIMIT, "maximum": LARGEST_BELOW_LIMIT}
        string: Schema = {"type": "string", "pattern": DECIMAL_STRING_PATTERN, "maxLength": DECIMAL_MAX_STRING_LENGTH}
        if meta.gt == 0:
            number["minimum"] = 1e-40
        elif meta.ge == 0:
            number["minimum"] = 0
        if meta.gt == 0 or meta.ge == 0:
            string["pattern"] = DECIMAL_STRING_PATTERN.replace("^[+-]?", "^[+]?", 1)
        bounds = "greater than 0" if meta.gt == 0 else "at least 0" if meta.ge == 0 else "above -1E+18"
        return {
            "anyOf": [string, number],
            "description": (
                f"{meta.description or _INPUT_DECIMAL_DESCRIPTION} Finite, at most {DECIMAL_MAX_DIGITS} "
                f"significant digits, exponent at least {DECIMAL_MIN_EXPONENT}, below 1E+18 and {bounds}."
            ),
            "example": "1250.50",
        }


def _single_literal(cls: type, name: str) -> Any | None:
    for field in shape_fields(cls):
        if field.name == name:
            values = literal_values(field.type)
            return values[0] if values is not None and len(values) == 1 else None
    return None


def _bounds(meta: Meta) -> Schema:
    bounds: Schema = {"minimum": meta.ge, "maximum": meta.le}
    if meta.gt is not None:
        bounds.update(minimum=meta.gt, exclusiveMinimum=True)
    return bounds


def _drop_none(schema: Schema) -> Schema:
    return {key: value for key, value in schema.items() if value is not None}


def _with(schema: Schema, **extra: Any) -> Schema:
    """`schema` plus `extra`; a `$ref` (which OpenAPI 3.0 allows no siblings) is wrapped in allOf first."""
    if not extra:
        return schema
    if "$ref" in schema:
        return {"allOf": [schema], **extra}
    return {**schema, **extra}


# Answers every endpoint can give before its view runs, documented on each.
INVALID_CORRELATION_ID_DESCRIPTION = "`INVALID_CORRELATION_ID`: `X-Correlation-Id` does not match `[A-Za-z0-9._-]{1,128}`."
INTERNAL_ERROR_DESCRIPTION = "`INTERNAL_ERROR`: a server fault; the log has it under the answer's correlation id."
DATABASE_UNAVAILABLE_DESCRIPTION = (
    "`DATABASE_UNAVAILABLE`: the database cannot be reached or does not answer in time; try again after "
    "`Retry-After` seconds."
)
LENGTH_REQUIRED_DESCRIPTION = (
    "`LENGTH_REQUIRED`: a chunked body that could not be read to its end; send it with a Content-Length."
)
CSRF_DESCRIPTION = "`PERMISSION_DENIED`: a session caller (the admin's login) without the CSRF token."
NOT_AUTHENTICATED_DESCRIPTION = (
    "`NOT_AUTHENTICATED`: no credentials, or an unknown or revoked token (`WWW-Authenticate: Token`). "
    "Send `Authorization: Token <key>`."
)

TOO_MANY_AUTH_FAILURES_DESCRIPTION = (
    "`TOO_MANY_AUTH_FAILURES`: this address sent too many wrong tokens (`DPM_AUTH_FAILURE_RATE`); its "
    "credentials are not even checked until `Retry-After` seconds have passed."
)
THROTTLED_DESCRIPTION = (
    "`THROTTLED`: the caller sent more requests than its rate allows here; try again after `Retry-After` seconds."
)
REQUEST_TOO_LARGE_DESCRIPTION = "`REQUEST_TOO_LARGE`: the body is larger than the configured limit."
BATCH_TOO_LARGE_DESCRIPTION = (
    "`BATCH_TOO_LARGE`: instruments x scenarios (`batch_cells`) exceeds `DPM_MAX_BATCH_CELLS` "
    "(`max_batch_cells`); split the batch."
)

_PROBLEM_EXAMPLES = {
    400: ("validation-error", "Bad Request", "VALIDATION_ERROR", None),
    401: ("not-authenticated", "Unauthorized", "NOT_AUTHENTICATED", "Authentication credentials were not provided."),
}


def _examples(status: int, text: str) -> list[OpenApiExample]:
    if status not in _PROBLEM_EXAMPLES:
        return []
    slug, title, code, detail = _PROBLEM_EXAMPLES[status]
    return [
        OpenApiExample(
            f"problem {status}",
            value={
                "type": f"https://dpm-async.dev/problems/{slug}",
                "title": title,
                "status": status,
                "detail": detail or text,
                "code": code,
                "correlation_id": "corr_0f2a9c1b6d7e4f3a8b5c2d1e0f9a8b7c",
            },
        )
    ]


def problem_responses(
    descriptions: dict[int, str], *, authenticated: bool = True, writes: bool = False
) -> dict[Any, OpenApiResponse]:
    """`responses=` entries for error statuses, documented as application/problem+json.

    Every endpoint also gets the 400 of a bad `X-Correlation-Id` (unless it documents its own 400,
    which should name it), the 500 of a server fault and, when `authenticated`, the 401 of a caller
    without credentials and the 429 of an address past its failed-credential limit; one that `writes` (POST) the 403 of a session caller without the CSRF
    token (unless it documents its own 403, which should name it).
    """
    descriptions = dict(descriptions)
    descriptions.setdefault(400, INVALID_CORRELATION_ID_DESCRIPTION)
    descriptions.setdefault(500, INTERNAL_ERROR_DESCRIPTION)
    descriptions.setdefault(503, DATABASE_UNAVAILABLE_DESCRIPTION)
    if authenticated:
        descriptions.setdefault(401, NOT_AUTHENTICATED_DESCRIPTION)
        descriptions.setdefault(429, TOO_MANY_AUTH_FAILURES_DESCRIPTION)
    if authenticated and writes:
        descriptions.setdefault(403, CSRF_DESCRIPTION)
    if writes:
        descriptions.setdefault(411, LENGTH_REQUIRED_DESCRIPTION)
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            response=Shape(ProblemBody),
            description=description,
            examples=_examples(status, description),
        )
        for status, description in sorted(descriptions.items())
    }


# Content codings (dpm_async/encoding.py): documented on every answer that is compressed.
ACCEPT_ENCODING_PARAMETER = OpenApiParameter(
    "Accept-Encoding", location=OpenApiParameter.HEADER, required=False, type=str,
    description="`zstd` and `gzip` compress the answer (zstd preferred on equal weights); without it, or "
    "with neither acceptable, the answer is not compressed.",
)


def encoded_answer_headers(statuses: list[int], *, not_modified: bool = False) -> list[OpenApiParameter]:
    """`Accept-Encoding` and the `Content-Encoding` and `Vary` of the answers with `statuses` (and
    the `Vary` of a 304)."""
    return [
        ACCEPT_ENCODING_PARAMETER,
        OpenApiParameter(
            "Content-Encoding", location=OpenApiParameter.HEADER, response=statuses, required=False, type=str,
            enum=["zstd", "gzip"], description="The answer's coding, when the request's `Accept-Encoding` asked for one.",
        ),
        OpenApiParameter(
            "Vary", location=OpenApiParameter.HEADER, response=[*statuses, *([304] if not_modified else [])],
            required=True, type=str, description="Names `Accept-Encoding`: the answer's bytes depend on it.",
        ),
    ]
