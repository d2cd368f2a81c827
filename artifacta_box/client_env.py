"""What an operator pastes into a client's shell: the box's API URL and a key as `export`
lines (printed by the first `serve` for the bootstrap key, and by `keys create --export`)."""

from __future__ import annotations

from artifacta_box.config import Settings

WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def api_url(settings: Settings) -> str:
    """The URL a client on this host reaches the API at: `server.public_url` when set, else
    http://host:port, with a wildcard listen address replaced by 127.0.0.1."""
    if settings.public_url:
        return settings.public_url
    host = settings.host
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def export_lines(key: str, url: str) -> str:
    """Two lines for a POSIX shell (`eval "$(...)"` works too)."""
    return f"export ARTIFACTA_API_KEY={key}\nexport ARTIFACTA_API_URL={url}"
