"""The gateway listener's config: the chat example loads, bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsman.config import ConfigError, GatewayListener, load, loads
from pointsman.serve.gateway_server import settings_from_config

ROOT = Path(__file__).resolve().parents[3]


def test_chat_example_config() -> None:
    config = load(ROOT / "examples" / "chat" / "gateway.toml")
    (listener,) = config.listeners
    assert isinstance(listener, GatewayListener)
    settings = settings_from_config(listener, ROOT / "examples" / "chat")
    assert settings.name == "chat-gateway" and settings.encoding == "json"
    assert settings.max_message_size == 65536
    assert settings.static_dir == ROOT / "examples" / "chat" / "static"


def test_defaults_and_errors() -> None:
    config = loads('[[listeners]]\nprotocol = "gateway"\nname = "g"\nlisten = ":9000"\n')
    (listener,) = config.listeners
    assert isinstance(listener, GatewayListener)
    assert listener.path == "/ws" and listener.limits.queue_bytes == 1024 * 1024
    with pytest.raises(ConfigError, match="encoding"):
        loads('[[listeners]]\nprotocol = "gateway"\nname = "g"\nlisten = ":9000"\n'
              'encoding = "xml"\n')


def test_missing_static_folder_is_refused(tmp_path: Path) -> None:
    config = loads('[[listeners]]\nprotocol = "gateway"\nname = "g"\nlisten = ":9000"\n'
                   'static = "nope"\n')
    with pytest.raises(FileNotFoundError, match="nope"):
        settings_from_config(config.listeners[0], tmp_path)  # type: ignore[arg-type]
