"""Security headers sent with every response of the web map (HTML, JSON, static files, errors).

The map page loads only its own scripts and styles (Leaflet is served locally), talks only to
its own origin (``fetch`` and the event stream), and draws images from its own origin plus,
when configured, the base-map tile server of ``Settings.tiles_url``. So the Content Security
Policy allows exactly that: no inline script, no ``eval``, no plugins, no framing.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from webmap.settings import Settings

_PLACEHOLDER = re.compile(r"\{[^}]*\}")


def tile_source(tiles_url: str | None) -> str | None:
    """Return the CSP source of a tile URL template, or None without one.

    ``https://t{s}.tianditu.gov.cn/...`` becomes ``https://*.tianditu.gov.cn`` (CSP allows a
    wildcard only as the leftmost label); a placeholder elsewhere in the host allows the
    scheme alone (``https:``), which is still no inline script.

    Parameters
    ----------
    tiles_url
        ``Settings.tiles_url``.
    """
    if not tiles_url:
        return None
    parts = urlsplit(tiles_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    if "{" not in host:
        return f"{parts.scheme}://{host}"
    labels = host.split(".")
    if _PLACEHOLDER.search(labels[0]) and not any("{" in label for label in labels[1:]):
        return f"{parts.scheme}://*." + ".".join(labels[1:])
    return f"{parts.scheme}:"


def content_security_policy(settings: Settings) -> str:
    """Return the ``Content-Security-Policy`` of the web map for these settings."""
    images = ["'self'", "data:"]  # Leaflet's and the legend's data: URLs
    tiles = tile_source(settings.tiles_url)
    if tiles:
        images.append(tiles)
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {' '.join(images)}",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(settings: Settings) -> dict[str, str]:
    """Return the headers every response carries.

    ``Referrer-Policy: strict-origin-when-cross-origin`` sends the tile server only the
    origin, which key-restricted tile services (Tianditu browser keys) check, and no paths.
    """
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


__all__ = ["content_security_policy", "security_headers", "tile_source"]
