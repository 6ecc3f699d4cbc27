"""The bytes that refuse a WebSocket with a close code, checked against websockets' parser."""

from __future__ import annotations

from websockets.client import ClientProtocol
from websockets.frames import Close
from websockets.uri import parse_uri

from pointsman.wire.websocket_refusal import accept_value, refusal, websocket_key


def test_accept_value_matches_rfc_6455_example() -> None:
    assert accept_value(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_websocket_key_needs_an_upgrade_to_websocket() -> None:
    headers = [(b"Host", b"x"), (b"Upgrade", b"WebSocket"), (b"Sec-WebSocket-Key", b" k== ")]
    assert websocket_key(headers) == b"k=="
    assert websocket_key([(b"Upgrade", b"h2c"), (b"Sec-WebSocket-Key", b"k")]) is None
    assert websocket_key([(b"Upgrade", b"websocket")]) is None


def test_a_real_client_sees_the_handshake_then_close_1013() -> None:
    client = ClientProtocol(parse_uri("ws://example.test/"))
    request = client.connect()
    client.send_request(request)
    key = request.headers["Sec-WebSocket-Key"].encode()
    client.receive_data(refusal(key, 1013, "try again later", b"X-Extra: 1\r\n"))
    events = client.events_received()
    assert events[0].status_code == 101  # the handshake completed
    assert events[0].headers["X-Extra"] == "1"
    assert client.close_rcvd == Close(1013, "try again later")


def test_reason_is_cut_to_fit_a_control_frame() -> None:
    data = refusal(b"k", 1013, "x" * 500)
    frame = data[data.index(b"\r\n\r\n") + 4:]
    assert frame[0] == 0x88 and frame[1] == 125 and len(frame) == 127
