"""Department URLs as they may be shown: never with their credentials.

A department's webhook URL may carry a key in its query string (`?api_key=...`), and a
careless one a `user:password@`. The audit store is permanent and shown to other
departments, responses go to whoever asked, and logs go to whoever reads them: the URL that
reaches any of them is `safe_url(url)`, with the userinfo gone and every query value blanked
(the names stay, so that an operator can still tell which parameter is set).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

HIDDEN = "[redacted]"

# Any absolute URL inside free text (an exception's message, an endpoint's answer, a log line).
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>`]+")
_LOCAL_NAMES = ("localhost", ".localhost", ".local", ".internal", ".localdomain")


def safe_url(url: str) -> str:
    """`url` without its userinfo and query values; unparseable text is hidden whole."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return HIDDEN
    if ":" in host:
        host = f"[{host}]"
    query = "&".join(
        f"{pair.partition('=')[0]}={HIDDEN}" if "=" in pair else pair
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit(SplitResult(parts.scheme, host + port, parts.path, query, ""))


def scrub_urls(text: str) -> str:
    """Every absolute URL in `text` made safe (see `safe_url`)."""
    return _URL_IN_TEXT.sub(lambda found: safe_url(found.group(0)), text)


def has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.username is not None or parts.password is not None


def private_target(url: str) -> str | None:
    """Why `url` points inside this machine or network (loopback, link-local, private), or
    None. Judged from the URL alone: a name is not resolved (the answer would depend on where
    and when it is asked), except the names that are local by definition."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    if host == "localhost" or host.endswith(_LOCAL_NAMES):
        return f"{host} is a local name"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, test in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
    ):
        if test:
            return f"{host} is a {kind} address"
    return None
