"""From one netlink read of NFLOG copies to counts per attempt, at about one dict lookup a copy.

A flood repeats one attempt, and its copies differ only in bytes the log does not keep: the
IPv4 id and header checksum, and the kernel's timestamp on the incoming and forwarded lanes.
The first copy of each attempt is parsed in full (nflog.parse_message) and decoded
(decode.decode). That parse also gives the message's *shape*: where its payload and its
timestamp sit. From then on a copy's key is its own bytes with those fields cut out, found
through its shape, and a copy whose key was seen before costs a few slices and one dict lookup.

Why a key answers as decode would: it holds every byte of the message up to the payload (the
jail's prefix, the uid, the mark, the payload's length; the netlink attribute headers, so the
shape itself) and every payload byte decode reads for that kind of packet (IP header, ports,
TCP flags, ICMP type). Packets decode reads further into (a DNS question, IPv4 options, IPv6
extension headers, fragments) are marked and decoded every time (decode.repeatable).
"""

from __future__ import annotations

from netjail.backends.attempts import prefix
from netjail.backends.attempts.batch import Batch
from netjail.backends.attempts.decode import Attempt, decode, repeatable
from netjail.backends.attempts.nflog import NFNL_SUBSYS_ULOG, NFULNL_MSG_PACKET, parse_message

_NLMSG_SIZE = 16
_PACKET_KIND = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
_STAMP_SIZE = 20  # NFULA_TIMESTAMP: attribute header + two 64-bit fields
# Where a shape is looked up: the message length and the low byte of its second attribute's
# length (the prefix, whose length varies with the jail's name). A cheap int, not a proof: the
# key lookup that follows is what must match.
_PREFIX_LEN_AT = 28

# (t0, t1, a1, b0, b1, c0, c1): the key is msg[:t0] + msg[t1:a1] + msg[b0:b1] + msg[c0:c1]
# (offsets from the message start; [t0, t1) is the timestamp attribute, empty when none)
Shape = tuple[int, int, int, int, int, int, int]


class Flow:
    """One key's answer, and how many copies of it this read held."""

    __slots__ = ("attempt", "jail", "n", "uid")

    def __init__(self, jail: str | None, uid: int | None, attempt: Attempt | None) -> None:
        self.n = 0
        self.jail = jail  # None: not ours (another prefix) or cut before the IP header: skipped
        self.uid = uid
        self.attempt = attempt  # None: decoded every time (decode.repeatable)


class Tally:
    LIMIT = 4096  # keys remembered; a flood of ever new keys clears them (and is rate-limited)
    SHAPES = 8  # per lookup slot

    def __init__(self) -> None:
        self._shapes: dict[int, list[Shape]] = {}
        self._flows: dict[bytes, Flow] = {}
        self._lanes: dict[str, tuple[str, str] | None] = {}
        self.skipped = 0  # copies not ours (another prefix) or cut before the IP header
        self.parsed = 0  # copies parsed in full: the rest were one lookup each

    def feed(self, data: bytes, batch: Batch, at: float) -> None:
        """Every packet message of one netlink read into `batch`, dated `at` (the read)."""
        end = len(data) & ~3
        touched: list[Flow] = []
        try:
            self._walk(data, end, batch, at, touched)
        finally:  # what was counted before a read's bytes raised is kept
            for flow in touched:
                n, flow.n = flow.n, 0
                if batch.full or flow.jail is None or flow.attempt is None:
                    self.skipped += n
                else:
                    batch.add(flow.jail, at, flow.uid, flow.attempt, n)

    def _walk(self, data: bytes, end: int, batch: Batch, at: float, touched: list[Flow]) -> None:
        words = memoryview(data)[:end].cast("I")
        shapes, flows = self._shapes, self._flows
        off = 0
        while off + _NLMSG_SIZE <= end:
            length = words[off >> 2]
            if length < _NLMSG_SIZE or off + length > end:
                break
            flow = None
            if length > _PREFIX_LEN_AT:
                for t0, t1, a1, b0, b1, c0, c1 in shapes.get(length << 8 | data[off + _PREFIX_LEN_AT], ()):
                    flow = flows.get(
                        data[off : off + t0]
                        + data[off + t1 : off + a1]
                        + data[off + b0 : off + b1]
                        + data[off + c0 : off + c1]
                    )
                    if flow is not None:
                        break
            if flow is None:
                flow = self._learn(data, off, length)
            if flow is not None:
                if flow.jail is None:
                    self.skipped += 1
                elif flow.attempt is None:
                    self._decode_each(data, off, length, batch, at)
                else:
                    n = flow.n
                    flow.n = n + 1
                    if not n:
                        touched.append(flow)
            off += (length + 3) & ~3

    def _lane(self, text: str) -> tuple[str, str] | None:
        if text in self._lanes:
            return self._lanes[text]
        if len(self._lanes) > 4096:  # prefixes come from our rules; a bound all the same
            self._lanes.clear()
        lane = self._lanes[text] = prefix.parse(text)
        return lane

    def _learn(self, data: bytes, off: int, length: int) -> Flow | None:
        """A copy no key answered: parsed in full; its shape and key remembered."""
        if int.from_bytes(data[off + 4 : off + 6], "little") != _PACKET_KIND:
            return None  # NLMSG_DONE closing a multipart batch, an error: nothing to count
        packet, payload_at, stamp_at = parse_message(data, off + _NLMSG_SIZE, off + length)
        self.parsed += 1
        if packet is None:
            return None
        lane = self._lane(packet.prefix)
        attempt = decode(packet.family, packet.payload, lane[0]) if lane else None
        flow = Flow(None, None, None)
        if lane is not None and attempt is not None:
            keep = attempt if repeatable(packet.family, packet.payload) else None
            flow = Flow(lane[1], packet.uid, keep)
        if payload_at < 0 or stamp_at == -2 or length <= _PREFIX_LEN_AT:
            return flow  # counted, but no shape to remember it by
        shape = _shape(
            data[payload_at] >> 4, payload_at - off, stamp_at - off if stamp_at >= 0 else -1, length
        )
        if len(self._flows) >= self.LIMIT:
            self._flows.clear()
            self._shapes.clear()
        slot = self._shapes.setdefault(length << 8 | data[off + _PREFIX_LEN_AT], [])
        if shape not in slot:
            if len(slot) >= self.SHAPES:
                slot.pop(0)
            slot.append(shape)
        t0, t1, a1, b0, b1, c0, c1 = shape
        key = (
            data[off : off + t0]
            + data[off + t1 : off + a1]
            + data[off + b0 : off + b1]
            + data[off + c0 : off + c1]
        )
        self._flows[key] = flow
        return flow

    def _decode_each(self, data: bytes, off: int, length: int, batch: Batch, at: float) -> None:
        packet, _, _ = parse_message(data, off + _NLMSG_SIZE, off + length)
        self.parsed += 1
        lane = self._lane(packet.prefix) if packet is not None else None
        attempt = decode(packet.family, packet.payload, lane[0]) if packet is not None and lane else None
        if packet is None or lane is None or attempt is None or batch.full:
            self.skipped += 1
            return
        batch.add(lane[1], at, packet.uid, attempt)


def _shape(version: int, payload: int, stamp: int, length: int) -> Shape:
    """Offsets of a message's key. IPv4: the header without its id (4:6) and checksum (10:12),
    then up to the TCP flags (byte 13 of the transport header: 33). IPv6: the header without its
    flow label (1:4, random per connection), the ports (40:44) and the TCP flags (53)."""
    if version == 4:
        a1, b, c = payload + 4, (payload + 6, payload + 10), (payload + 12, payload + 34)
    else:
        a1, b, c = payload + 1, (payload + 4, payload + 44), (payload + 53, payload + 54)
    t0, t1 = (stamp, stamp + _STAMP_SIZE) if stamp >= 0 else (0, 0)
    return (t0, t1, *(min(x, length) for x in (a1, *b, *c)))  # type: ignore[return-value]
