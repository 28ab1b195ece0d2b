"""What the MIDI parser does not say about a file, read from its bytes.

* :func:`smpte_division`: a header whose time division counts SMPTE frames instead of
  ticks per quarter note (the parser only says "division type is not ticks per quarter");
* :func:`count_note_ons`: the note-on events of the file. The parser pairs every note-on
  with its note-off and drops a note whose note-off never comes, without a word; the
  difference between this count and the notes it returns is the notes never closed.

Both take the bytes of a standard MIDI file (``MThd`` first). The event walk is linear in
the file's size, reads nothing past its end and never fails: a malformed track is counted
up to where it stops making sense (the parser reports such files itself).
"""

from __future__ import annotations

HEADER_END = 14  # "MThd", length, format, tracks, division
META, SYSEX = 0xFF, 0xF0
ONE_DATA_BYTE = (0xC0, 0xD0)  # program change, channel pressure


def smpte_division(data: bytes) -> tuple[int, int] | None:
    """``(frames per second, ticks per frame)`` of a header with SMPTE time division, else
    None (ticks per quarter note)."""
    if len(data) < HEADER_END or not data[12] & 0x80:
        return None
    return 256 - data[12], data[13]  # the high byte is minus the frame rate (-24 .. -30)


def count_note_ons(data: bytes) -> int:
    """Note-on events of velocity > 0 in every ``MTrk`` chunk (running status followed)."""
    count, pos, size = 0, HEADER_END, len(data)
    while pos + 8 <= size:
        start = pos + 8
        pos = start + int.from_bytes(data[pos + 4: start], "big")
        if data[start - 8: start - 4] == b"MTrk":
            count += _track_note_ons(data, start, min(pos, size))
    return count


def _track_note_ons(data: bytes, i: int, end: int) -> int:
    """Note-ons of velocity > 0 among the events of ``data[i:end]`` (one track)."""
    count, running = 0, 0
    while i < end:
        while i < end and data[i] & 0x80:  # delta time: a variable-length number
            i += 1
        i += 1
        if i >= end:
            break
        status = data[i]
        if status & 0x80:
            i += 1
            if status >= SYSEX:  # meta (type, length, data) or sysex (length, data)
                i += status == META
                length = 0
                while i < end:
                    byte = data[i]
                    i += 1
                    length = (length << 7) | (byte & 0x7F)
                    if not byte & 0x80:
                        break
                i += length
                continue
            running = status
        else:
            status = running  # running status: the data bytes follow at once
        kind = status & 0xF0
        if kind in ONE_DATA_BYTE:
            i += 1
            continue
        if kind == 0x90 and i + 1 < end and data[i + 1]:
            count += 1
        i += 2
    return count
