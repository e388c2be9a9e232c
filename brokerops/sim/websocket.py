"""RFC 6455 websocket, server side, over a blocking socket: the opening handshake and frames.

Transport only (``stream.py`` speaks Alpaca's protocol on top). What a server must do and this
module does: answer the handshake with ``Sec-WebSocket-Accept`` (426 for a version other than 13,
400 for a request that is not an upgrade; no extension and no subprotocol is ever accepted, so a
client's ``permessage-deflate`` offer is declined); refuse client frames without a mask, with
reserved bits, or control frames that are fragmented or longer than 125 bytes (close 1002); put
fragmented messages back together (control frames may come between the fragments); refuse text
that is not UTF-8 (1007) and messages over :data:`MAX_MESSAGE` (1009). Server frames are never
masked and never fragmented.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import BinaryIO

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Largest client message accepted (Alpaca's actions are a few hundred bytes).
MAX_MESSAGE = 1 << 20


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY})


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    NO_STATUS = 1005
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    TOO_BIG = 1009


class ProtocolError(Exception):
    """The client broke RFC 6455; close the connection with ``code``."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ConnectionEnded(Exception):
    """The socket ended (EOF, reset, shut down) in the middle of, or instead of, a frame."""


# ---------------------------------------------------------------------- handshake


@dataclass(frozen=True, slots=True)
class HandshakeRefusal:
    """The HTTP answer to a request that cannot be upgraded."""

    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


def _tokens(value: str | None) -> set[str]:
    return {token.strip().lower() for token in (value or "").split(",")}


def handshake_refusal(headers: Mapping[str, str]) -> HandshakeRefusal | None:
    """Why this ``GET`` cannot become a websocket (None: it can). Header names are matched
    case-insensitively (``http.client.HTTPMessage`` does that)."""
    if "websocket" not in _tokens(headers.get("Upgrade")):
        return HandshakeRefusal(400, "websocket: the client is not using the websocket protocol")
    if "upgrade" not in _tokens(headers.get("Connection")):
        return HandshakeRefusal(400, "websocket: 'upgrade' token not found in 'Connection' header")
    if (headers.get("Sec-WebSocket-Version") or "").strip() != "13":
        return HandshakeRefusal(
            426,
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
            (("Sec-WebSocket-Version", "13"),),
        )
    key = (headers.get("Sec-WebSocket-Key") or "").strip()
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        valid = False
    if not valid:
        return HandshakeRefusal(400, "websocket: not a websocket handshake: invalid key")
    return None


def accept_value(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key.strip() + GUID).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


def switching_protocols(key: str, server: str) -> bytes:
    """The ``101 Switching Protocols`` answer, encoded."""
    lines = (
        "HTTP/1.1 101 Switching Protocols",
        f"Server: {server}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_value(key)}",
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# ---------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class Frame:
    fin: bool
    opcode: Opcode
    payload: bytes


def encode_frame(opcode: Opcode, payload: bytes = b"") -> bytes:
    """One unfragmented, unmasked server frame."""
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        head = struct.pack("!BB", first, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, 126, length)
    else:
        head = struct.pack("!BBQ", first, 127, length)
    return head + payload


def close_payload(code: CloseCode | int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()[:123]


def parse_close(payload: bytes) -> tuple[int, str]:
    """``(code, reason)`` of a close frame's payload (1005 when it carries none)."""
    if not payload:
        return CloseCode.NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "invalid close frame")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolError(CloseCode.INVALID_DATA, "invalid close reason") from None
    return struct.unpack("!H", payload[:2])[0], reason


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    try:
        data = stream.read(size)
    except (OSError, ValueError) as error:  # reset, timeout, or a closed file
        raise ConnectionEnded(str(error)) from error
    if data is None or len(data) < size:
        raise ConnectionEnded("connection closed")
    return data


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


def read_frame(stream: BinaryIO, max_size: int = MAX_MESSAGE) -> Frame:
    """The next client frame, unmasked. Raises :class:`ProtocolError` or
    :class:`ConnectionEnded`."""
    first, second = _read_exact(stream, 2)
    if first & 0x70:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "reserved bits must be 0")
    try:
        opcode = Opcode(first & 0x0F)
    except ValueError:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "unknown opcode") from None
    fin = bool(first & 0x80)
    if not second & 0x80:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "frames from the client must be masked")
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exact(stream, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exact(stream, 8))
    if opcode not in DATA_OPCODES and (length > 125 or not fin):
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "invalid control frame")
    if length > max_size:
        raise ProtocolError(CloseCode.TOO_BIG, "message too big")
    mask = _read_exact(stream, 4)
    return Frame(fin, opcode, _unmask(_read_exact(stream, length), mask))


class MessageReader:
    """Client messages off a stream: data messages reassembled from their fragments, control
    frames handed over as they come (between fragments too)."""

    def __init__(self, stream: BinaryIO, max_size: int = MAX_MESSAGE) -> None:
        self._stream = stream
        self._max_size = max_size
        self._opcode: Opcode | None = None
        self._parts: list[bytes] = []
        self._size = 0

    def next(self) -> tuple[Opcode, bytes | str]:
        """``(TEXT, str)``, ``(BINARY, bytes)``, or a control frame ``(CLOSE|PING|PONG, bytes)``."""
        while True:
            frame = read_frame(self._stream, self._max_size - self._size)
            if frame.opcode not in DATA_OPCODES:
                return frame.opcode, frame.payload
            if frame.opcode is Opcode.CONTINUATION:
                if self._opcode is None:
                    raise ProtocolError(CloseCode.PROTOCOL_ERROR, "unexpected continuation")
            elif self._opcode is not None:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "expected a continuation frame")
            else:
                self._opcode = frame.opcode
            self._parts.append(frame.payload)
            self._size += len(frame.payload)
            if not frame.fin:
                continue
            opcode, payload = self._opcode, b"".join(self._parts)
            self._opcode, self._parts, self._size = None, [], 0
            if opcode is Opcode.TEXT:
                try:
                    return opcode, payload.decode()
                except UnicodeDecodeError:
                    raise ProtocolError(CloseCode.INVALID_DATA, "invalid UTF-8") from None
            return Opcode.BINARY, payload
