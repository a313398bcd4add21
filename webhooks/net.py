"""Outbound HTTP for webhooks, refusing private, loopback and link-local destinations.

The host is resolved once per request and the connection is made to the address that was
checked (the Host header and TLS name stay the hostname), so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot reach an internal address.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

MAX_EXCERPT = 500


# A DNS name (labels of letters, digits and hyphens) or an IP literal (urlsplit strips IPv6 brackets).
_HOST_RE = re.compile(
    r"(?i)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?"
    r"|[0-9a-f:.]*:[0-9a-f:.]*(?:%[\w.-]+)?"
)


class UnsafeURL(ValueError):
    """A URL webhooks must not call; the message says why."""


class Unresolved(UnsafeURL):
    """The host has no address (yet): not called now, but not refused on subscription."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve(url: str) -> Target:
    """Parse and resolve `url`; UnsafeURL unless every address it resolves to is public
    (or `WEBHOOKS_ALLOW_PRIVATE` is on)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("expected an http(s) URL with a host")
    if parts.username or parts.password:
        raise UnsafeURL("credentials in the URL are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("the port is not a number between 0 and 65535") from exc
    try:
        ascii_host = parts.hostname.encode("idna").decode("ascii")  # bücher.de -> xn--bcher-kva.de
    except UnicodeError:
        ascii_host = ""
    if not _HOST_RE.fullmatch(ascii_host) or ascii_host.rstrip(".").endswith(".invalid"):
        raise UnsafeURL(f"{parts.hostname} is not a host name that can resolve")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolved(f"{parts.hostname} does not resolve") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise Unresolved(f"{parts.hostname} does not resolve")
    if not settings.WEBHOOKS_ALLOW_PRIVATE:
        private = [str(a) for a in addresses if not _is_public(a)]
        if private:
            raise UnsafeURL(f"{parts.hostname} resolves to a private or reserved address ({private[0]})")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """POST once, no redirects followed; returns (status, the start of the answer).
    Raises UnsafeURL, OSError (including timeouts) or http.client.HTTPException."""
    target = resolve(url)
    conn_class = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = conn_class(target, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        excerpt = response.read(MAX_EXCERPT).decode("utf-8", errors="replace")
        return response.status, excerpt
    finally:
        conn.close()
