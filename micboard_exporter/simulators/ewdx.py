"""What an EW-DX receiver reports about a link, shared by its two simulated protocols (SSCv2 and SSC v1).

Both protocols expose the same device state; only the framing differs, so the warning list is derived once
here from the simulated physics. (Simulators still share nothing with the plugins' codecs.)
"""

from __future__ import annotations

from micboard_exporter.simulators.physics import ChannelPhysics

#: Below this RF level (dBm) an EW-DX receiver raises LowSignal.
LOW_SIGNAL_DBM = -85.0


def warnings(ch: ChannelPhysics) -> list[str]:
    """The channel's warnings in the device's words: NoLink, LowSignal, AfPeak, Aes256Error."""
    found = []
    if not ch.link_up:
        found.append("NoLink")
    elif max(ch.received_dbm()) < LOW_SIGNAL_DBM:
        found.append("LowSignal")
    if ch.clip_pending:
        found.append("AfPeak")
    if ch.encryption_error:
        found.append("Aes256Error")
    return found
