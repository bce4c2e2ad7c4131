"""Content codings of answers (RFC 9110 section 8.4): which one a client gets, and the bytes of each.

An answer is built as a sequence of pieces: text (`bytes`) and zstd frames (`Frame`) of text
that is already compressed, typically a finished operation's stored scenario results. Each coding
turns the same pieces into its bytes, streaming, one piece at a time:

- `zstd`: text runs become frames of their own and stored frames go out as they are; zstd data is
  "one or more frames" (RFC 8878 section 3), so the stored bytes are sent without a decompress and
  recompress. curl and urllib3 (with backports.zstd) read such a body whole; httpx (0.28, 0.29)
  does too, except that it fails when one of its reads ends exactly at the end of a frame. So a
  caller whose User-Agent is httpx's gets one frame, compressed as the pieces are decoded (the
  way web servers have long kept gzip from clients known to mis-decode it), and every other
  answer is written so that each write ends inside a frame, which keeps reads off frame ends
  (tests/api/test_encodings_real_clients.py).
- `gzip`: one gzip member, compressed as the pieces are decoded. A single member on purpose:
  httpx and curl stop after the first member of a multi-member body.
- identity: text as is, frames decompressed in bounded chunks.

So serving a 470 MB result holds one stored frame and one chunk at a time, whatever the coding.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import zstandard
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.cache import patch_vary_headers

from dpm_async.correlation import correlation_id_bound, correlation_id_current

type ContentCoding = Literal["zstd", "gzip", "identity"]
ZSTD: ContentCoding = "zstd"
GZIP: ContentCoding = "gzip"
IDENTITY: ContentCoding = "identity"

# Preferred first when a client accepts several with the same weight: zstd is 3x faster than gzip
# at a better ratio (bench/operations_results.py), and stored results are zstd already.
_PREFERENCE: tuple[ContentCoding, ...] = (ZSTD, GZIP)
_ALIASES = {"x-gzip": GZIP}

# zstd level 1 for everything compressed on the fly: on a 73 MB result it writes 6.2 MB in 0.15 s,
# where level 3 writes 6.3 MB in 0.2-0.35 s (zstd's fast levels trade little ratio on this JSON).
ZSTD_LEVEL = 1
# gzip level 1: 73 MB in ~0.5 s to 9.9 MB; level 6 takes 3 s for 7.5 MB, too slow to stream.
GZIP_LEVEL = 1
# Decompressed text goes out in chunks of this size, so one frame never becomes one 23 MB string.
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Frame:
    """One zstd frame holding `size` bytes of text; `data` is its bytes, or fetches them when its
    turn comes (so a streamed answer holds one stored frame at a time)."""

    data: bytes | Callable[[], bytes]
    size: int
    stored_size: int

    def load(self) -> bytes:
        return self.data if isinstance(self.data, bytes) else self.data()


type Piece = bytes | Frame


def zstd_compress(text: bytes) -> bytes:
    """`text` as one zstd frame (its content size recorded in the frame header)."""
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(text)


def frame_text(frame: bytes) -> bytes:
    """The text of one whole zstd frame (for small frames; large ones go through `_frame_chunks`)."""
    return zstandard.ZstdDecompressor().decompress(frame)


def coding_negotiate(accept_encoding: str | None) -> ContentCoding:
    """The coding to answer with, from the request's `Accept-Encoding` (RFC 9110 section 12.5.3).

    The acceptable coding of the highest weight among zstd and gzip (zstd on a tie), `*` standing
    for any coding not named; identity when the header is absent or accepts neither. Identity is
    sent even when the client refuses it (`identity;q=0`): an answer it may not like beats a 406.
    """
    if not accept_encoding:
        return IDENTITY
    weights: dict[str, float] = {}
    for member in accept_encoding.split(","):
        name, _, parameters = member.partition(";")
        name = name.strip().lower()
        name = _ALIASES.get(name, name)
        if not name:
            continue
        weight = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    weight = 0.0  # a weight nobody can read accepts nothing
        weights[name] = max(weights.get(name, 0.0), weight)
    wildcard = weights.get("*", 0.0)
    best, best_weight = IDENTITY, 0.0
    for coding in _PREFERENCE:
        weight = weights.get(coding, wildcard)
        if weight > best_weight:
            best, best_weight = coding, weight
    return best


@dataclass(frozen=True, slots=True)
class EncodedBody:
    """An answer's bytes in one coding: `chunks` to stream and, when known up front, their length."""

    coding: ContentCoding
    chunks: Iterator[bytes]
    length: int | None


def body_encode(pieces: Iterable[Piece], coding: ContentCoding, *, single_frame: bool = False) -> EncodedBody:
    """The pieces in `coding`. Text runs are compressed up front (they are small: heads, names,
    separators), so zstd and identity answers know their length before the first byte is sent.
    `single_frame`: a zstd answer is one frame, compressed as it is sent (length unknown)."""
    if coding == ZSTD and single_frame:
        return EncodedBody(ZSTD, _zstd_single_frame(_identity_chunks(list(pieces))), None)
    if coding == ZSTD:
        parts = _zstd_parts(pieces)
        length = sum(len(part) if isinstance(part, bytes) else part.stored_size for part in parts)
        return EncodedBody(ZSTD, _zstd_chunks(parts), length)
    parts = list(pieces)
    if coding == GZIP:
        return EncodedBody(GZIP, _gzip_chunks(_identity_chunks(parts)), None)
    length = sum(len(part) if isinstance(part, bytes) else part.size for part in parts)
    return EncodedBody(IDENTITY, _identity_chunks(parts), length)


def bytes_encode(text: bytes, coding: ContentCoding) -> bytes:
    """A small answer's text in `coding`, at once."""
    if coding == ZSTD:
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(text)
    if coding == GZIP:
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        return compressor.compress(text) + compressor.flush()
    return text


def _zstd_parts(pieces: Iterable[Piece]) -> list[bytes | Frame]:
    """Runs of text as frames of their own (as bytes), stored frames kept as they are."""
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    parts: list[bytes | Frame] = []
    run: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            run.append(piece)
            continue
        if run:
            parts.append(compressor.compress(b"".join(run)))
            run = []
        parts.append(piece)
    if run:
        parts.append(compressor.compress(b"".join(run)))
    return parts


def _zstd_chunks(parts: list[bytes | Frame]) -> Iterator[bytes]:
    """The frames, each write ending one byte short of a frame's end (the byte goes with the next
    write): a reader that gets a write at a time then never stops at the end of a frame."""
    held = b""
    for part in parts:
        # A stored frame is handed on whole (a few MB at most: the text of one scenario, compressed).
        data = part if isinstance(part, bytes) else part.load()
        yield held + data[:-1]
        held = data[-1:]
    if held:
        yield held


def _zstd_single_frame(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


def _frame_chunks(data: bytes) -> Iterator[bytes]:
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_size=CHUNK_BYTES)
    while chunk := reader.read(CHUNK_BYTES):
        yield chunk


def _identity_chunks(parts: Iterable[Piece]) -> Iterator[bytes]:
    run: list[bytes] = []
    for part in parts:
        if isinstance(part, bytes):
            run.append(part)
            continue
        if run:
            yield b"".join(run)
            run = []
        yield from _frame_chunks(part.load())
    if run:
        yield b"".join(run)


def _gzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


# --- answers ------------------------------------------------------------------------------------

ACCEPT_ENCODING_META_KEY = "HTTP_ACCEPT_ENCODING"
CONTENT_ENCODING_HEADER = "Content-Encoding"
VARY_HEADER = "Vary"


# Callers whose zstd decoder cannot be trusted with concatenated frames (see the module's docstring).
SINGLE_FRAME_USER_AGENTS = ("python-httpx/",)


def request_coding(request: HttpRequest) -> ContentCoding:
    """The coding the caller of `request` gets (its `Accept-Encoding`)."""
    return coding_negotiate(request.META.get(ACCEPT_ENCODING_META_KEY))


def wants_single_frame(request: HttpRequest) -> bool:
    """The caller's zstd decoder needs the answer in one frame (its User-Agent is listed)."""
    return str(request.META.get("HTTP_USER_AGENT", "")).startswith(SINGLE_FRAME_USER_AGENTS)


def encoded_response(
    pieces: Iterable[Piece], coding: ContentCoding, *, status: int = 200, content_type: str = "application/json",
    stream: bool = False, single_frame: bool = False,
) -> HttpResponse | StreamingHttpResponse:
    """An answer of `pieces` in `coding`, with `Content-Encoding` (unless identity), `Vary:
    Accept-Encoding` and, when known, `Content-Length`.

    `stream`: a StreamingHttpResponse that produces the body as the server sends it, piece by
    piece, so memory stays flat whatever the size. The stream runs after the middleware returned,
    so it is given the request's correlation id back (a log line from inside it carries the id).
    """
    body = body_encode(pieces, coding, single_frame=single_frame)
    response: HttpResponse | StreamingHttpResponse
    if stream:
        correlation_id = correlation_id_current()
        chunks = body.chunks if correlation_id is None else _bound(body.chunks, correlation_id)
        response = StreamingHttpResponse(chunks, status=status, content_type=content_type)
    else:
        response = HttpResponse(b"".join(body.chunks), status=status, content_type=content_type)
    if coding != IDENTITY:
        response[CONTENT_ENCODING_HEADER] = coding
    if body.length is not None:
        response["Content-Length"] = str(body.length)
    patch_vary_headers(response, ("Accept-Encoding",))
    return response


def _bound(chunks: Iterator[bytes], correlation_id: str) -> Iterator[bytes]:
    """`chunks`, each produced with `correlation_id` bound (a generator must not hold a binding
    across a `yield`: the server runs other code between two chunks)."""
    while True:
        with correlation_id_bound(correlation_id):
            chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk
