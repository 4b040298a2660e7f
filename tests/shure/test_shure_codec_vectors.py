"""Every device-side line of ``shared/reference/shure-protocols.md`` §5, parsed and decoded.

Each row: the family, the raw bytes exactly as the reference prints them, the channel the frame is about
and the readings we expect in engineering units (``None`` = a sentinel, i.e. "unknown, no sample").
"""

from __future__ import annotations

from typing import Any

import pytest

from micboard_exporter.plugins.shure.codec import Decoded, Family, FrameReader, decode, parse_frame, split_datagram

U, Q, S, A, R, P = Family.ULXD, Family.QLXD, Family.SLXD, Family.AXTD, Family.UHFR, Family.P10T


def _decode_one(family: Family, raw: bytes) -> Decoded:
    frames = split_datagram(raw) if family.udp else FrameReader().feed(raw)
    assert len(frames) == 1, frames
    return decode(family, parse_frame(frames[0]))


# (id, family, raw, channel, channel readings, device readings)
VECTORS: list[tuple[str, Family, bytes, int | None, dict[str, Any], dict[str, Any]]] = [
    # ---- §5.1 ULX-D / QLX-D
    ("5.1.1 meter echo", U, b"< REP 1 METER_RATE 00100 >", None, {}, {}),
    ("5.1.1 sample", U, b"< SAMPLE 1 ALL XB 035 098 >", 1,
     # 098 is above the documented 000-050 audio scale: unknown, not +48 dBFS.
     {"active_a": False, "active_b": True, "link_up": True, "rf_combined": 35 - 128.0,
      "audio_level_dbfs": None, "clip": None}, {}),
    ("5.1.1 sample at top of scale", U, b"< SAMPLE 2 ALL AB 090 050 >", 2,
     {"active_a": True, "active_b": True, "link_up": True, "rf_combined": -38.0, "audio_level_dbfs": 0.0,
      "clip": True}, {}),
    ("5.1.1 sample qlxd", Q, b"< SAMPLE 1 ALL AX 080 020 >", 1,
     {"active_a": True, "active_b": False, "link_up": True, "rf_combined": -48.0, "audio_level_dbfs": -30.0,
      "clip": False}, {}),
    ("5.1.2 bars", U, b"< REP 1 BATT_BARS 004 >", 1, {"battery_bars": 4}, {}),
    ("5.1.2 bars sentinel", U, b"< REP 1 BATT_BARS 255 >", 1, {"battery_bars": None}, {}),
    ("5.1.3 runtime", U, b"< REP 1 BATT_RUN_TIME 00125 >", 1, {"battery_runtime_seconds": 125 * 60.0}, {}),
    ("5.1.3 runtime sentinel", Q, b"< REP 1 BATT_RUN_TIME 65535 >", 1, {"battery_runtime_seconds": None}, {}),
    ("5.1.4 tx type", U, b"< REP 1 TX_TYPE ULXD2 >", 1, {"tx_model": "ULXD2"}, {}),
    ("5.1.4 tx type unkn", U, b"< REP 1 TX_TYPE UNKN >", 1, {"tx_model": None}, {}),
    ("5.1.5 name", U, b"< REP 1 CHAN_NAME {Vox1    } >", 1, {"name": "Vox1"}, {}),
    ("5.1.6 frequency", U, b"< REP 1 FREQUENCY 518250 >", 1, {"frequency_hz": 518_250_000.0}, {}),
    ("5.1.6 group", U, b"< REP 1 GROUP_CHAN --,-- >", None, {}, {}),
    ("5.1.7 device id", U, b"< REP DEVICE_ID {Rack1   } >", None, {}, {"device_id": "Rack1"}),
    ("5.1.7 firmware", U, b"< REP FW_VER {2.1.5                   } >", None, {}, {"firmware": "2.1.5"}),
    ("5.1.8 power lock", U, b"< REP 1 TX_PWR_LOCK ON >", 1, {"power_locked": True}, {}),
    ("5.1.8 interference", U, b"< REP 1 RF_INT_DET NONE >", 1, {"interference": False}, {}),
    ("5.1.8 encryption", Q, b"< REP 1 ENCRYPTION_WARNING OFF >", 1, {"encryption_error": False}, {}),
    ("5.1.9 gain", U, b"< REP 1 AUDIO_GAIN 030 >", None, {}, {}),
    ("5.1.10 mac", Q, b"< REP MAC_ADDR 00:0E:DD:45:60:EB >", None, {}, {}),
    ("5.1.11 error", U, b"< REP ERR >", None, {}, {}),
    ("5.1.12 unsolicited", U, b"< REP 1 BATT_BARS 003 >", 1, {"battery_bars": 3}, {}),
    # ---- §5.2 Axient Digital
    ("5.2.1 meter echo", A, b"< REP 1 METER_RATE 00100 >", None, {}, {}),
    ("5.2.1 spec sample", A, b"< SAMPLE 1 ALL 005 031 102 102 BB 31 086 31 065 >", 1,
     {"link_quality_ratio": 1.0, "clip": False, "audio_peak_dbfs": -18.0, "audio_level_dbfs": -18.0,
      "rf_a": -34.0, "rf_b": -55.0, "active_a": True, "active_b": True, "link_up": True}, {}),
    ("5.2.2 no-tx capture", A, b"< SAMPLE 1 ALL 255 000 005 033 XX 00 011 00 012 >", 1,
     {"link_quality_ratio": None, "clip": False, "audio_peak_dbfs": -115.0, "audio_level_dbfs": -87.0,
      "rf_a": -109.0, "rf_b": -108.0, "active_a": False, "active_b": False, "link_up": False}, {}),
    ("5.2.2 no-tx nr-ad4", A, b"< SAMPLE 3 ALL 255 000 005 020 XX 00 005 00 006 >", 3,
     {"link_quality_ratio": None, "clip": False, "audio_peak_dbfs": -115.0, "audio_level_dbfs": -100.0,
      "rf_a": -115.0, "rf_b": -114.0, "active_a": False, "active_b": False, "link_up": False}, {}),
    ("5.2.3 quadversity", A, b"< SAMPLE 1 ALL 005 031 102 102 BBBB 31 083 31 068 31 069 31 072 >", 1,
     {"link_quality_ratio": 1.0, "clip": False, "audio_peak_dbfs": -18.0, "audio_level_dbfs": -18.0,
      "rf_a": -37.0, "rf_b": -52.0, "rf_c": -51.0, "rf_d": -48.0, "active_a": True, "active_b": True,
      "active_c": True, "active_d": True, "link_up": True}, {}),
    ("5.2.3 fd-c", A, b"< SAMPLE 1 ALL 005 031 102 102 BB 31 082 31 060 BB 31 082 31 060 >", 1,
     {"link_quality_ratio": 1.0, "clip": False, "audio_peak_dbfs": -18.0, "audio_level_dbfs": -18.0,
      "rf_a": -38.0, "rf_b": -60.0, "active_a": True, "active_b": True, "link_up": True}, {}),
    ("5.2.4 name", A, b"< REP 1 CHAN_NAME {05                             } >", 1, {"name": "05"}, {}),
    ("5.2.4 frequency", A, b"< REP 1 FREQUENCY 0594075 >", 1, {"frequency_hz": 594_075_000.0}, {}),
    ("5.2.4 bars", A, b"< REP 1 TX_BATT_BARS 255 >", 1, {"battery_bars": None}, {}),
    ("5.2.4 mins", A, b"< REP 1 TX_BATT_MINS 65535 >", 1, {"battery_runtime_seconds": None}, {}),
    ("5.2.4 charge", A, b"< REP 1 TX_BATT_CHARGE_PERCENT 255 >", 1, {"battery_charge_ratio": None}, {}),
    ("5.2.4 batt type", A, b"< REP 1 TX_BATT_TYPE UNKN >", 1, {"battery_type": None}, {}),
    ("5.2.4 tx model", A, b"< REP 1 TX_MODEL UNKNOWN >", 1, {"tx_model": None}, {}),
    ("5.2.4 tx lock", A, b"< REP 1 TX_LOCK UNKNOWN >", 1, {"power_locked": None}, {}),
    ("5.2.4 tx offset", A, b"< REP 1 TX_OFFSET 255 >", None, {}, {}),
    ("5.2.4 quality", A, b"< REP 1 CHAN_QUALITY 255 >", 1, {"link_quality_ratio": None}, {}),
    ("5.2.4 rssi", A, b"< REP 1 RSSI 2 012 >", 1, {"rf_b": -108.0}, {}),
    ("5.2.4 rssi led", A, b"< REP 1 RSSI_LED_BITMAP 2 00 >", None, {}, {}),
    ("5.2.4 rms", A, b"< REP 1 AUDIO_LEVEL_RMS 020 >", 1, {"audio_level_dbfs": -100.0}, {}),
    ("5.2.4 peak", A, b"< REP 1 AUDIO_LEVEL_PEAK 005 >", 1, {"audio_peak_dbfs": -115.0}, {}),
    ("5.2.4 audio led", A, b"< REP 1 AUDIO_LED_BITMAP 000 >", 1, {"clip": False}, {}),
    ("5.2.4 gain", A, b"< REP 1 AUDIO_GAIN 018 >", None, {}, {}),
    ("5.2.4 mute", A, b"< REP 1 AUDIO_MUTE OFF >", None, {}, {}),
    ("5.2.4 encryption", A, b"< REP 1 ENCRYPTION_STATUS OK >", 1, {"encryption_error": False}, {}),
    ("5.2.4 interference", A, b"< REP 1 INTERFERENCE_STATUS NONE >", 1, {"interference": False}, {}),
    ("5.2.4 unregistered", A, b"< REP 1 UNREGISTERED_TX_STATUS OK >", None, {}, {}),
    ("5.2.4 fd mode", A, b"< REP 1 FD_MODE OFF >", None, {}, {}),
    ("5.2.4 slot status", A, b"< REP 1 SLOT_STATUS 8 EMPTY >", None, {}, {}),
    ("5.2.4 slot bars", A, b"< REP 1 SLOT_BATT_BARS 8 255 >", None, {}, {}),
    ("5.2.4 slot mins", A, b"< REP 1 SLOT_BATT_MINS 8 65535 >", None, {}, {}),
    ("5.2.4 model", A, b"< REP MODEL {AD4Q-A                          } >", None, {}, {"model": "AD4Q-A"}),
    ("5.2.4 firmware", A, b"< REP FW_VER {1.1.43.0                } >", None, {}, {"firmware": "1.1.43.0"}),
    ("5.2.4 device id", A, b"< REP DEVICE_ID {RF 5-8                        } >", None, {}, {"device_id": "RF 5-8"}),
    ("5.2.4 band", A, b"< REP RF_BAND {G57     } >", None, {}, {}),
    ("5.2.4 encryption mode", A, b"< REP ENCRYPTION_MODE OFF >", None, {}, {}),
    ("5.2.4 quadversity mode", A, b"< REP QUADVERSITY_MODE OFF >", None, {}, {}),
    ("5.2.4 transmission mode", A, b"< REP TRANSMISSION_MODE STANDARD >", None, {}, {}),
    ("5.2.5 rssi ant 1", A, b"< REP 1 RSSI 1 083 >", 1, {"rf_a": -37.0}, {}),
    ("5.2.6 tx model", A, b"< REP 1 TX_MODEL ADX2 >", 1, {"tx_model": "ADX2"}, {}),
    ("5.2.6 bars", A, b"< REP 1 TX_BATT_BARS 004 >", 1, {"battery_bars": 4}, {}),
    ("5.2.6 mins", A, b"< REP 1 TX_BATT_MINS 00312 >", 1, {"battery_runtime_seconds": 312 * 60.0}, {}),
    ("5.2.6 charge", A, b"< REP 1 TX_BATT_CHARGE_PERCENT 073 >", 1, {"battery_charge_ratio": 0.73}, {}),
    ("5.2.6 slot", A, b"< REP 1 SLOT_STATUS 1 LINKED.ACTIVE >", None, {}, {}),
    # ---- §5.3 SLX-D
    ("5.3.1 model", S, b"< REP MODEL {SLXD4" + b" " * 27 + b"} >", None, {}, {"model": "SLXD4"}),
    ("5.3.2 device id", S, b"< REP DEVICE_ID {SLXD4   } >", None, {}, {"device_id": "SLXD4"}),
    ("5.3.2 band", S, b"< REP RF_BAND {G55     } >", None, {}, {}),
    ("5.3.2 firmware", S, b"< REP FW_VER {2.0.15.2" + b" " * 16 + b"} >", None, {}, {"firmware": "2.0.15.2"}),
    ("5.3.2 firmware self-test failed", S, b"< REP FW_VER {2.0.15.2*" + b" " * 15 + b"} >", None, {},
     {"firmware": "2.0.15.2*"}),
    ("5.3.2 lock", S, b"< REP LOCK_STATUS ALL >", None, {}, {}),
    ("5.3.3 tx model unknown", S, b"< REP 1 TX_MODEL UNKNOWN >", 1, {"tx_model": None}, {}),
    ("5.3.3 tx model", S, b"< REP 1 TX_MODEL SLXD2 >", 1, {"tx_model": "SLXD2"}, {}),
    ("5.3.4 mins unknown", S, b"< REP 1 TX_BATT_MINS 65535 >", 1, {"battery_runtime_seconds": None}, {}),
    ("5.3.4 mins", S, b"< REP 1 TX_BATT_MINS 00125 >", 1, {"battery_runtime_seconds": 7500.0}, {}),
    ("5.3.5 bars unknown", S, b"< REP 1 TX_BATT_BARS 255 >", 1, {"battery_bars": None}, {}),
    ("5.3.5 bars", S, b"< REP 1 TX_BATT_BARS 004 >", 1, {"battery_bars": 4}, {}),
    ("5.3.6 rssi 1", S, b"< REP 1 RSSI 1 083 >", 1, {"rf_a": -37.0}, {}),
    ("5.3.6 rssi 2", S, b"< REP 1 RSSI 2 064 >", 1, {"rf_b": -56.0}, {}),
    ("5.3.6 rssi combined (HA-SLX)", S, b"< REP 2 RSSI 068 >", 2, {"rf_combined": -52.0}, {}),
    ("5.3.7 meter echo", S, b"< REP 1 METER_RATE 01000 >", None, {}, {}),
    ("5.3.7 sample", S, b"< SAMPLE 1 ALL 102 102 086 >", 1,
     {"audio_peak_dbfs": -18.0, "clip": False, "audio_level_dbfs": -18.0, "rf_combined": -34.0, "rf_a": None,
      "rf_b": None}, {}),
    ("5.3.8 frequency", S, b"< REP 1 FREQUENCY 0578350 >", 1, {"frequency_hz": 578_350_000.0}, {}),
    ("5.3.8 group", S, b"< REP 1 GROUP_CHANNEL {--,--    } >", None, {}, {}),
    ("5.3.8 frequency set", S, b"< REP 1 FREQUENCY 0620000 >", 1, {"frequency_hz": 620_000_000.0}, {}),
    ("5.3.9 gain", S, b"< REP 1 AUDIO_GAIN 030 >", None, {}, {}),
    ("5.3.9 gain inc", S, b"< REP 1 AUDIO_GAIN 040 >", None, {}, {}),
    # ---- §5.4 UHF-R (UDP, * framing)
    ("5.4.1 name", R, b"* REPORT 1 CHAN_NAME Chan1_______ *", 1, {"name": "Chan1"}, {}),
    ("5.4.2 battery", R, b"* REPORT 1 TX_BAT 4 *", 1, {"battery_bars": 4}, {}),
    ("5.4.2 battery unknown", R, b"* REPORT 1 TX_BAT U *", 1, {"battery_bars": None}, {}),
    ("5.4.3 group", R, b"* REPORT 1 GROUP_CHAN 01 05 *", None, {}, {}),
    ("5.4.3 frequency", R, b"* REPORT 1 FREQUENCY 600000 *", 1, {"frequency_hz": 600_000_000.0}, {}),
    ("5.4.4 sample", R, b"* SAMPLE 1 ALL AX 080 100 4 128 *", 1,
     {"active_a": True, "active_b": False, "link_up": True, "rf_a": -80.0, "rf_b": -100.0, "battery_bars": 4,
      "clip": True}, {}),
    ("5.4.5 device id (WB)", R, b"* REPORT 1 DEVICE_ID UR4D *", None, {}, {}),
    # ---- §5.5 PSM1000 (REPORT, CRLF)
    ("5.5.1 device name", P, b"< REPORT DEVICE_NAME IEMRACK1 >\r\n", None, {}, {"device_id": "IEMRACK1"}),
    ("5.5.2 name", P, b"< REPORT 1 CHAN_NAME Vocal1 >\r\n", 1, {"name": "Vocal1"}, {}),
    ("5.5.2 rf mute", P, b"< REPORT 1 RF_MUTE 0 >\r\n", 1, {"tx_on": True}, {}),
    ("5.5.3 meter L", P, b"< REPORT 1 AUDIO_IN_LVL_L 00000641928 >\r\n", None, {}, {}),
    ("5.5.3 meter R", P, b"< REPORT 1 AUDIO_IN_LVL_R 00000246260 >\r\n", None, {}, {}),
]


@pytest.mark.parametrize(
    ("family", "raw", "channel", "channel_fields", "device_fields"),
    [pytest.param(*row[1:], id=row[0]) for row in VECTORS],
)
def test_reference_vector(
    family: Family, raw: bytes, channel: int | None, channel_fields: dict[str, Any], device_fields: dict[str, Any]
) -> None:
    decoded = _decode_one(family, raw)
    if channel_fields:
        assert decoded.channel == channel
    assert dict(decoded.channel_fields) == pytest.approx(channel_fields)
    assert dict(decoded.device_fields) == device_fields


def test_rep_err_is_an_error_frame() -> None:
    frame = parse_frame(FrameReader().feed(b"< REP ERR >")[0])
    assert frame.is_error
    assert not parse_frame("REP 1 BATT_BARS 004").is_error


def test_client_side_vectors_parse_as_commands() -> None:
    """The → lines of §5 are what our encoder must produce; they at least tokenise the same way."""
    frame = parse_frame("SET 1 METER_RATE 00100")
    assert (frame.verb, frame.channel, frame.prop, frame.args) == ("SET", 1, "METER_RATE", ("00100",))
    frame = parse_frame("GET 1 RSSI 1")
    assert (frame.channel, frame.prop, frame.args) == (1, "RSSI", ("1",))
