"""The bytes rtctl daemons exchange over Redis pub/sub.

A room message carries Socket.IO packets already encoded by the sender, so a
receiving node hands them to its local members without decoding any JSON::

    offset  size  field
    0       1     version, 0x01
    1       1     kind: 'R' room delivery
    2       2     length of the header, big-endian (H)
    4       H     header, JSON: {"o": origin node, "r": room, "s": [skip sids],
                                 "p": [[kind, length], ...]}  kind 't' text, 'b' binary
    4+H     …     packet payloads, concatenated in header order

The origin is always the header's first field, so ``origin_marker(node)`` (the bytes
the header of that node's messages begins with) lets a node recognise its own
publications, which it receives back on the channels it subscribes, without parsing
anything (``is_from``).

A command (kick, call, revoke, …) is a JSON object: version 0x01, kind 'C', then
UTF-8 JSON ``{"op": …, …}``. Anything else is dropped by the receiver and counted.
"""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engineio import packet as eio_packet

VERSION = 1
ROOM = ord("R")
COMMAND = ord("C")
MESSAGE_TYPE = 4  # engineio.packet.MESSAGE
MAX_HEADER = 65535
_ROOM_PREFIX = bytes((VERSION, ROOM))
_dumps = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(…, separators=…) builds
# an encoder per call; the bytes are the same


class WireError(ValueError):
    """A message that is not in this format."""


@dataclass
class RoomMessage:
    origin: str
    room: str
    skip: list[str]
    packets: list[eio_packet.Packet]  # (engineio is imported only to decode: it loads slowly)


def encode_room(
    origin: str, room: str, packets: list[eio_packet.Packet], skip: list[str] | None = None
) -> bytes:
    parts: list[bytes] = []
    layout: list[list[Any]] = []
    for pkt in packets:
        if isinstance(pkt.data, bytes | bytearray):
            raw = bytes(pkt.data)
            layout.append(["b", len(raw)])
        else:
            raw = str(pkt.data).encode()
            layout.append(["t", len(raw)])
        parts.append(raw)
    # "o" first: origin_marker() relies on it
    header = _dumps({"o": origin, "r": room, "s": skip or [], "p": layout}).encode()
    if len(header) > MAX_HEADER:
        raise WireError("room message header too large")
    return struct.pack(">BBH", VERSION, ROOM, len(header)) + header + b"".join(parts)


@functools.lru_cache(maxsize=4096)
def _text_header_prefix(origin: str, room: str) -> bytes:
    return (_dumps({"o": origin, "r": room, "s": []})[:-1] + ',"p":[["t",').encode()


def encode_room_text(origin: str, room: str, packet: bytes) -> bytes:
    """``encode_room`` of one text packet (an event without binary data), the same
    message built without a JSON encode of its header per call: the fast path of
    emitting from outside a daemon."""
    header = _text_header_prefix(origin, room) + str(len(packet)).encode() + b"]]}"
    if len(header) > MAX_HEADER:
        raise WireError("room message header too large")
    return struct.pack(">BBH", VERSION, ROOM, len(header)) + header + packet


def encode_command(op: str, **fields: Any) -> bytes:
    return bytes((VERSION, COMMAND)) + _dumps({"op": op, **fields}).encode()


def origin_marker(origin: str) -> bytes:
    """What the header of every room message ``origin`` encodes begins with."""
    return b'{"o":' + _dumps(origin).encode() + b","


def is_from(message: bytes, marker: bytes) -> bool:
    """Whether ``message`` is a room message whose origin has this ``origin_marker``: a byte
    comparison, no parsing (a message from another encoder may still be from that origin;
    ``decode_room`` tells for sure)."""
    return message.startswith(_ROOM_PREFIX) and message.startswith(marker, 4)


def kind_of(message: bytes) -> int:
    if len(message) < 2 or message[0] != VERSION or message[1] not in (ROOM, COMMAND):
        raise WireError("unknown message format")
    return message[1]


def origin_of(message: bytes) -> str:
    """The sending node of a room message, read without decoding the payloads."""
    return str(_room_header(message)[0]["o"])


def _room_header(message: bytes) -> tuple[dict[str, Any], int]:
    if len(message) < 4:
        raise WireError("truncated room message")
    (length,) = struct.unpack_from(">H", message, 2)
    end = 4 + length
    try:
        header = json.loads(message[4:end])
    except ValueError:
        raise WireError("room message header is not JSON") from None
    if not isinstance(header, dict):
        raise WireError("room message header is not an object")
    return header, end


@functools.cache
def _packet_class() -> Any:
    """engineio's Packet, imported at the first decode (engineio loads slowly)."""
    from engineio.packet import Packet

    return Packet


def decode_room(message: bytes) -> RoomMessage:
    make, text = _packet_class(), MESSAGE_TYPE
    header, offset = _room_header(message)
    try:
        packets = []
        for kind, length in header["p"]:
            chunk = message[offset : offset + int(length)]
            if len(chunk) != int(length):
                raise WireError("truncated packet payload")
            offset += int(length)
            data: str | bytes = chunk.decode() if kind == "t" else chunk
            packets.append(make(text, data))
        return RoomMessage(
            str(header["o"]), str(header["r"]), [str(s) for s in header["s"]], packets
        )
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"bad room message: {exc}") from None


def decode_command(message: bytes) -> dict[str, Any]:
    try:
        data = json.loads(message[2:])
    except (ValueError, UnicodeDecodeError):
        raise WireError("command is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("op"), str):
        raise WireError("command has no op")
    return data


def event_of(text: str) -> tuple[str, list[Any]] | None:
    """The event name and arguments of a Socket.IO EVENT packet's text (``2…``, or
    ``5<n>-…`` with binary placeholders); None for any other packet or a malformed one."""
    if not text or text[0] not in "25":
        return None
    i = text.find("-", 1) + 1 if text[0] == "5" else 1
    if i == 0:
        return None
    if text.startswith("/", i):  # a namespace other than "/"
        i = text.find(",", i) + 1
        if i == 0:
            return None
    while i < len(text) and text[i].isdigit():  # an ack id
        i += 1
    try:
        payload = json.loads(text[i:])
    except ValueError:
        return None
    if isinstance(payload, list) and payload and isinstance(payload[0], str):
        return payload[0], payload[1:]
    return None
