"""WebRTC plumbing: peer connections that offer media only on the server's own address.

aiortc gathers ICE candidates on every interface except 127.0.0.1 and, without
configuration, asks Google's public STUN server for a reflexive address. A server
bound to loopback must do neither: :func:`ice_hosts` scopes the addresses aioice
gathers on (a context variable read by a wrapper around
``aioice.ice.get_host_addresses``; ``None`` keeps aioice's own choice), and every
peer connection here is created with no ICE servers, so nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import uuid
from collections.abc import Iterator

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

_ICE_HOSTS: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "avatarlab_ice_hosts", default=None
)
_original_get_host_addresses = aioice.ice.get_host_addresses


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    hosts = _ICE_HOSTS.get()
    if hosts is None:
        return _original_get_host_addresses(use_ipv4, use_ipv6)
    return [h for h in hosts if (":" in h and use_ipv6) or (":" not in h and use_ipv4)]


aioice.ice.get_host_addresses = _get_host_addresses


@contextlib.contextmanager
def ice_hosts(hosts: tuple[str, ...] | None) -> Iterator[None]:
    """Within the block, ICE gathers host candidates only on ``hosts`` (IP addresses)."""
    token = _ICE_HOSTS.set(hosts)
    try:
        yield
    finally:
        _ICE_HOSTS.reset(token)


def media_hosts(bind_host: str) -> tuple[str, ...] | None:
    """ICE addresses for a server bound to ``bind_host``: that address, or all for a wildcard."""
    if bind_host in ("0.0.0.0", "::"):
        return None
    if bind_host == "localhost":
        return ("127.0.0.1",)
    return (bind_host,)


def new_peer() -> RTCPeerConnection:
    """A peer connection with no STUN/TURN servers (host candidates only)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def add_synced_tracks(pc: RTCPeerConnection, tracks: list[MediaStreamTrack]) -> None:
    """Send ``tracks`` as one media stream, so the browser lip-syncs them.

    Receivers synchronise audio and video only within one stream (the ``msid`` of the
    SDP); aiortc gives each sender its own stream id unless told otherwise.
    """
    stream_id = f"avatar-{uuid.uuid4().hex[:12]}"
    for track in tracks:
        sender = pc.addTrack(track)
        sender._stream_id = stream_id


def keep_candidates(sdp: str, loopback_only: bool) -> str:
    """Drop the offer's ``a=candidate`` lines we must not contact.

    mDNS names (``*.local``) are always dropped when media is restricted: resolving
    them sends multicast queries onto the network. A loopback server also drops every
    non-loopback address; the browser is reached through the address its own
    connectivity checks come from (a peer-reflexive candidate) instead.
    """
    kept = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            fields = line.split()
            address = fields[4] if len(fields) > 4 else ""
            if address.lower().endswith(".local") or (loopback_only and not _is_loopback(address)):
                continue
        kept.append(line)
    return "\r\n".join(kept)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


async def answer(pc: RTCPeerConnection, offer_sdp: str, hosts: tuple[str, ...] | None) -> str:
    """Apply the browser's offer and return our SDP answer (candidates gathered, no trickle).

    With ``hosts`` set, media is offered only on those addresses and the offer's
    candidates are filtered (:func:`keep_candidates`), so no packet goes elsewhere.
    """
    if hosts is not None:
        offer_sdp = keep_candidates(offer_sdp, all(_is_loopback(h) for h in hosts))
    with ice_hosts(hosts):
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp
