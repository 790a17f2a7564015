"""The outbound-request guard (SSRF): the http handler may reach public addresses only.

The check runs where the connection is made: each hostname is resolved once, every address it resolves to must be
public, and the socket connects to that checked address. So DNS rebinding cannot swap in another address, and each
redirect hop (a new connection) is checked again. Development settings may allow non-public networks.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from contextlib import contextmanager
from functools import cache
from typing import Any, Iterator

import certifi
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    pass


# IPv6 forms whose last 32 bits are an IPv4 address the packet is delivered to: IPv4-compatible (also holds :: and
# ::1), IPv4-mapped, IPv4-translated (RFC 2765) and NAT64 (RFC 6052). is_global is true for some of them.
_IPV4_IN_LAST_32_BITS = tuple(
    ipaddress.IPv6Network(network) for network in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)
# Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the operator's prefix length, so it cannot be
# checked; the range is never public.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses a packet to this IPv6 address is relayed through or to."""
    if address.teredo is not None:
        return address.teredo
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if any(address in network for network in _IPV4_IN_LAST_32_BITS):
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    return ()


class AddressGuard:
    def __init__(self, allow_private_network: bool, allowed_private_cidrs: tuple[str, ...] = ()) -> None:
        self.allow_private_network = allow_private_network
        self.allowed_networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in allowed_private_cidrs)

    def is_allowed(self, address: IPAddress) -> bool:
        if self.allow_private_network or any(address in network for network in self.allowed_networks):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded:
                return all(self.is_allowed(ipv4) for ipv4 in embedded)
            # is_global can be true for these, though neither is public.
            if address.is_site_local or address in _LOCAL_NAT64:
                return False
        # is_global is false for loopback, private, link-local (169.254.169.254, the cloud metadata service),
        # carrier-grade NAT (100.64/10, Alibaba's 100.100.100.200), ULA (fd00:ec2::254), reserved and unspecified.
        return address.is_global and not address.is_multicast

    def resolve(self, host: str, port: int) -> str:
        """The address to connect to for host:port, after checking every address the name resolves to."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise AddressRefused(f"cannot resolve {host!r}: {exc}") from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
        refused = [str(address) for address in addresses if not self.is_allowed(address)]
        if refused or not addresses:
            raise AddressRefused(f"refusing to connect to {host!r}: non-public address {', '.join(refused)}")
        return str(addresses[0])


def static_refusal(host: str, guard: AddressGuard) -> str | None:
    """Why a request to `host` is refused before any lookup (an address literal that is not public, or a name that
    only ever means this machine), or None. The guard still checks every address at connect time."""
    name = host.strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        if not guard.allow_private_network and (name == "localhost" or name.endswith(".localhost")):
            return f"{host!r} is this machine, not a public address"
        return None
    return None if guard.is_allowed(address) else f"{address} is not a public address"


def _time_left(deadline: float, timeout: float | None, timed_out: type[Exception]) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise timed_out("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """Every wait on the connection ends by the request's deadline: httpx bounds each read, so a server sending its
    headers a byte at a time would otherwise hold the request (and its worker thread) long past it."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self.stream = stream
        self.deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, _time_left(self.deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, _time_left(self.deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = _time_left(self.deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self.stream.start_tls(ssl_context, server_hostname, left), self.deadline)

    def get_extra_info(self, info: str) -> Any:
        return self.stream.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, guard: AddressGuard, deadline: float) -> None:
        self.guard = guard
        self.deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        address = self.guard.resolve(host, port)
        left = _time_left(self.deadline, timeout, httpcore.ConnectTimeout)
        # TLS still verifies the certificate against the request's hostname (httpcore passes it as the SNI).
        stream = super().connect_tcp(address, port, left, local_address, socket_options)
        return _DeadlineStream(stream, self.deadline)


@contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    """httpcore's errors as httpx's, which the callers of an httpx transport expect (httpx maps them only for its
    own transports)."""
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise httpx.TimeoutException(str(exc), request=request) from exc
    except httpcore.ConnectError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except httpcore.ProtocolError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except httpcore.NetworkError as exc:
        raise httpx.NetworkError(str(exc), request=request) from exc


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self.stream = stream
        self.request = request

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors(self.request):
            yield from self.stream

    def close(self) -> None:
        self.stream.close()


@cache
def _tls_context() -> ssl.SSLContext:
    """Loading the CA bundle costs about 17 ms: once per process (a context serves many connections)."""
    return ssl.create_default_context(cafile=certifi.where())


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport whose every connection goes through the guard, and whose every network wait ends by
    `deadline` (a time.monotonic() value). No proxies: they would bypass the guard."""

    def __init__(self, guard: AddressGuard, deadline: float) -> None:
        self.pool = httpcore.ConnectionPool(
            ssl_context=_tls_context(),
            network_backend=_GuardedBackend(guard, deadline),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors(request):
            response = self.pool.handle_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream, request),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.pool.close()
