"""How a camera's picture is shown right: deinterlaced, turned upright, mapped from HDR to SDR.

A plain decode shows what cameras write wrongly: 1080i camcorders (AVCHD), DV and broadcast
MPEG-2 store two fields a frame, which comb on every movement; phones store portrait video
sideways with a display matrix saying how to turn it; recent phones film 10-bit HDR (HLG or PQ
in BT.2020) that looks grey and washed out when its numbers are read as SDR BT.709. A
:class:`Look` says what one stream needs, decided once from its first frame
(:func:`retrieval.media.decode.look_of`), and gives the ffmpeg filters that fix it. The analysis
runs them in PyAV's filter graph and the render in the bundled ffmpeg: the very same filters, so
the index sees the pictures the film shows.

- Interlaced: ``bwdif`` (Bob Weaver: yadif's motion test with a better interpolation), its
  parity from the stream's field order, every frame when the stream says it is interlaced, only
  the flagged ones when only frames do (``deint=interlaced``). One frame out per frame; two
  (one per field) when the film runs at the field rate or faster.
- Rotation: ffmpeg's own autorotate rule on the display matrix (transpose, flips), applied
  after the deinterlacer, since fields are rows of the stored picture.
- HDR (PQ ``smpte2084`` or HLG ``arib-std-b67``) and BT.2020 colour: libswscale's colour
  management (``scale`` with ``out_transfer``/``out_primaries`` bt709), the one tone mapper both
  PyAV's libraries and the bundled ffmpeg have (PyAV has no libzimg for ``zscale``); measured in
  docs/footage.md against zscale+tonemap. Its default intent (relative colorimetric) keeps HDR
  reference white (203 cd/m2) at SDR white and clips highlights above it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# libavutil's enums, as PyAV gives them (ints)
_FIELD_ORDERS = {2: "tff", 3: "bff", 4: "tff", 5: "bff"}  # TT, BB, TB (top coded first), BT
_HDR_TRANSFERS = {16: "smpte2084", 18: "arib-std-b67"}
_WIDE_PRIMARIES = {9: "bt2020"}
TONE_MAP = "out_transfer=bt709:out_primaries=bt709:out_color_matrix=bt709:out_range=tv"
# containers without a seek index (see seek_back), and how many packets measure their GOP
_UNINDEXED = frozenset({"mpegts", "mpeg", "mpegvideo", "h264", "hevc"})
_GAP_PACKETS = 600


@dataclass(frozen=True)
class Look:
    """What one video stream needs to be shown as its camera meant it; ``Look()``: nothing."""

    deinterlace: str = ""  # "" (progressive), "tff", "bff", or "auto" (frames say, per frame)
    turn: tuple[tuple[str, str], ...] = ()  # filters that turn the picture upright
    transfer: str = ""  # an HDR transfer ("smpte2084", "arib-std-b67") to map to SDR
    primaries: str = ""  # wide primaries ("bt2020") to map to BT.709
    fps: float = 0.0  # frames a second (fields are twice that), for field-rate output
    # seconds to seek before an in-point and decode forward: MPEG-TS/PS have no seek index,
    # so a seek lands on any packet and the frames up to the next keyframe are lost
    seek_back: float = 0.0

    @property
    def plain(self) -> bool:
        """Nothing to filter in decoding order: frames come as decoded (maybe tone-mapped
        when converted)."""
        return not self.stream_filters()

    def filters(self, film_fps: float = 0.0) -> tuple[tuple[str, str], ...]:
        """(filter, arguments) in order: :meth:`stream_filters`, then :meth:`tone_filters`;
        ``film_fps`` at or above the field rate keeps every field as a frame of its own."""
        return self.stream_filters(film_fps) + self.tone_filters()

    def stream_filters(self, film_fps: float = 0.0) -> tuple[tuple[str, str], ...]:
        """What must see every frame in order: the deinterlacer (it looks at the frames
        around each one), then the turn."""
        out: list[tuple[str, str]] = []
        if self.deinterlace:
            fields = bool(self.fps) and film_fps >= 2 * self.fps - 0.01
            deint = "interlaced" if self.deinterlace == "auto" else "all"
            out.append(("bwdif", f"mode={'send_field' if fields else 'send_frame'}"
                                 f":parity={self.deinterlace}:deint={deint}"))
        return tuple(out) + self.turn

    def tone_filters(self) -> tuple[tuple[str, str], ...]:
        """The mapping to SDR BT.709, picture by picture. It costs about 0.2 s a 1080p frame
        whatever the output size (libswscale builds its mapping for every frame), so the
        analysis maps only the pictures it keeps (keyframes) and finds cuts and motion on the
        unmapped ones."""
        if self.transfer or self.primaries:
            return (("scale", TONE_MAP), ("format", "yuv420p"))
        return ()

    def chain(self, film_fps: float = 0.0) -> str:
        """The filters as an ffmpeg filter chain ("" when none), ending with a comma."""
        parts = [f"{name}={args}" if args else name for name, args in self.filters(film_fps)]
        return "".join(p + "," for p in parts)

    def to_dict(self) -> dict:
        """Plain JSON data (lists, not tuples), as :meth:`from_dict` reads it back."""
        return {**asdict(self), "turn": [list(t) for t in self.turn]}

    @classmethod
    def from_dict(cls, data: dict) -> "Look":
        return cls(str(data.get("deinterlace", "")),
                   tuple((str(n), str(a)) for n, a in data.get("turn", ())),
                   str(data.get("transfer", "")), str(data.get("primaries", "")),
                   float(data.get("fps", 0.0)), float(data.get("seek_back", 0.0)))


def decide(field_order: int, interlaced_frame: bool, transfer: int, primaries: int,
           matrix: tuple[int, ...] | None, fps: float, seek_back: float = 0.0) -> Look:
    """The look of a stream from its field order (``AVFieldOrder``), whether its first frame
    is flagged interlaced, its colour transfer and primaries (``AVColorTransferCharacteristic``,
    ``AVColorPrimaries``) and its display matrix (nine 16.16 / 2.30 fixed-point ints)."""
    deinterlace = _FIELD_ORDERS.get(int(field_order), "")
    if not deinterlace and interlaced_frame:
        deinterlace = "auto"
    return Look(deinterlace, turn_filters(matrix), _HDR_TRANSFERS.get(int(transfer), ""),
                _WIDE_PRIMARIES.get(int(primaries), ""), round(float(fps), 3),
                round(float(seek_back), 3))


def _rotation(m: tuple[int, ...]) -> float:
    """libavutil's ``av_display_rotation_get``: degrees counter-clockwise (NaN: degenerate)."""
    a, b, c, d = (v / 65536 for v in (m[0], m[1], m[3], m[4]))
    sx, sy = math.hypot(a, c), math.hypot(b, d)
    if sx == 0 or sy == 0:
        return math.nan
    return -math.degrees(math.atan2(b / sy, a / sx))


def turn_filters(matrix: tuple[int, ...] | None) -> tuple[tuple[str, str], ...]:
    """The filters ffmpeg's autorotate inserts for a display matrix (fftools' rule: transpose
    for a quarter turn, with a flip when the matrix mirrors; h/vflip for a half turn; ``rotate``
    for an odd angle), so the analysis turns a clip exactly as a player does."""
    if not matrix or len(matrix) != 9:
        return ()
    rot = _rotation(matrix)
    if math.isnan(rot):
        return ()
    theta = -round(rot)
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        return (("transpose", "cclock_flip" if matrix[3] > 0 else "clock"),)
    if abs(theta - 180) < 1:
        return tuple(f for f, on in ((("hflip", ""), matrix[0] < 0), (("vflip", ""), matrix[4] < 0))
                     if on)
    if abs(theta - 270) < 1:
        return (("transpose", "clock_flip" if matrix[3] < 0 else "cclock"),)
    if abs(theta) > 1:
        return (("rotate", f"{theta:g}*PI/180"),)
    return (("vflip", ""),) if matrix[4] < 0 else ()


def turned_size(look: Look, width: int, height: int) -> tuple[int, int]:
    """The picture's size once turned upright."""
    if any(name == "transpose" for name, _ in look.turn):
        return height, width
    return width, height


# -- read from PyAV's objects (passed in: PyAV itself is imported in decode only) -------------
def display_matrix(frame) -> tuple[int, ...] | None:
    """A decoded frame's display matrix (nine ints), or None."""
    import struct

    for sd in frame.side_data:
        if sd.type.name == "DISPLAYMATRIX":
            data = bytes(sd)
            return struct.unpack("<9i", data[:36]) if len(data) >= 36 else None
    return None


def seek_back(container, stream) -> float:
    """How far before an in-point a seek must land in a container without a seek index
    (MPEG-TS and -PS: AVCHD, DVD, broadcast), where ffmpeg's seek lands on any packet and the
    frames up to the next keyframe are lost: the longest keyframe interval among its first
    packets (the whole span read when it holds one keyframe), plus two frames. 0 elsewhere."""
    if container.format.name not in _UNINDEXED:
        return 0.0
    container.seek(0)
    keys, first, last = [], None, 0.0
    for n, packet in enumerate(container.demux(stream)):
        if n >= _GAP_PACKETS:
            break
        if packet.pts is None or packet.time_base is None:
            continue
        t = float(packet.pts * packet.time_base)
        first = t if first is None else min(first, t)
        last = max(last, t)
        if packet.is_keyframe:
            keys.append(t)
    container.seek(0)
    keys.sort()
    gaps = [b - a for a, b in zip(keys, keys[1:])]
    longest = max(gaps) if gaps else last - (first or 0.0)
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    return longest + 2 / rate
