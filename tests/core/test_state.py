"""State store and events: the two doors, diffing, and what a scrape shows."""

from __future__ import annotations

import logging
from types import MappingProxyType

import pytest
from core_helpers import snapshot

from micboard_exporter.config_types import ChannelConfig, DeviceConfig
from micboard_exporter.events import DeviceEvent, EventKind
from micboard_exporter.state import RECENT_EVENTS, StateStore


def cfg(device_id: str = "rx", host: str = "127.0.0.1", **labels: str) -> DeviceConfig:
    return DeviceConfig(id=device_id, plugin="scripted", host=host, labels=MappingProxyType(labels),
                        channels=MappingProxyType({1: ChannelConfig(slot=7, name="Pastor Dan")}))


def store_with(*devices: DeviceConfig) -> tuple[StateStore, list[DeviceEvent]]:
    seen: list[DeviceEvent] = []
    store = StateStore(on_event=seen.append)
    store.set_devices(list(devices))
    return store, seen


def kinds(events: list[DeviceEvent]) -> list[str]:
    return [e.kind.value for e in events]


def test_device_not_polled_yet_is_down_without_channels() -> None:
    store, _ = store_with(cfg())
    text = store.scrape()
    assert 'micboard_device_up{device="rx"} 0' in text
    assert "micboard_channel_info{" not in text
    assert "micboard_device_info{" not in text


def test_success_shows_channels_with_slot_and_performer() -> None:
    store, seen = store_with(cfg(room="main-hall"))
    store.record_success("rx", snapshot("rx"), wall_time=1_700_000_000.0)
    text = store.scrape()
    assert 'micboard_device_up{device="rx",room="main-hall"} 1' in text
    assert ('micboard_channel_info{device="rx",room="main-hall",channel="1",name="Vocal",slot="7",'
            'performer="Pastor Dan"} 1') in text
    assert 'micboard_rf_signal_strength_dbm{device="rx",room="main-hall",channel="1",antenna="a"} -60.0' in text
    assert 'micboard_rf_antenna_active{device="rx",room="main-hall",channel="1",antenna="b"} 0' in text
    assert 'micboard_transmitter_battery_bars{device="rx",room="main-hall",channel="1"} 5' in text
    assert 'micboard_device_last_success_timestamp_seconds{device="rx",room="main-hall"} 1700000000.0' in text
    assert kinds(seen) == ["device_up"]


def test_unknown_values_produce_no_sample() -> None:
    store, _ = store_with(cfg())
    store.record_success("rx", snapshot("rx", bars=None, charge=None))
    text = store.scrape()
    assert "micboard_transmitter_battery_bars{" not in text
    assert "micboard_transmitter_battery_charge_ratio{" not in text
    assert 'micboard_transmitter_present{device="rx",channel="1"} 1' in text


def test_down_device_keeps_up_info_and_freshness_but_loses_channels() -> None:
    store, seen = store_with(cfg())
    store.record_success("rx", snapshot("rx"), wall_time=100.0)
    store.record_failure("rx", "timeout", "127.0.0.1: no answer within 2s", wall_time=110.0)
    text = store.scrape()
    assert 'micboard_device_up{device="rx"} 0' in text
    assert "micboard_device_info{" in text
    assert 'micboard_device_last_success_timestamp_seconds{device="rx"} 100.0' in text
    assert "micboard_channel_info{" not in text
    assert 'micboard_poll_errors_total{device="rx",reason="timeout"} 1' in text
    assert kinds(seen) == ["device_up", "device_down"]
    status = store.status("rx")
    assert status is not None and status.consecutive_failures == 1 and "no answer" in (status.last_error or "")


def test_device_down_and_up_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    store, _ = store_with(cfg())
    caplog.set_level(logging.INFO, logger="micboard_exporter.state")
    store.record_success("rx", snapshot("rx"))
    for _ in range(5):
        store.record_failure("rx", "timeout", "no answer")
    store.record_success("rx", snapshot("rx"))
    store.record_success("rx", snapshot("rx"))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["device rx is down: no answer", "device rx is back up"]


def test_transmitter_and_battery_events() -> None:
    store, seen = store_with(cfg())
    store.record_success("rx", snapshot("rx", bars=4))
    store.record_success("rx", snapshot("rx", bars=2))        # low
    store.record_success("rx", snapshot("rx", bars=2))        # no change, no event
    store.record_success("rx", snapshot("rx", bars=1))        # critical
    store.record_success("rx", snapshot("rx", tx=False))      # pack off
    store.record_success("rx", snapshot("rx", bars=5))        # fresh pack on
    assert kinds(seen) == ["device_up", "battery_low", "battery_critical", "transmitter_off", "transmitter_on"]
    assert seen[1].channel == 1 and seen[1].channel_name == "Vocal" and seen[1].detail == "2 bars"


def test_charge_ratio_thresholds_win_over_bars() -> None:
    store, seen = store_with(cfg())
    store.record_success("rx", snapshot("rx", bars=1, charge=0.5))
    store.record_success("rx", snapshot("rx", bars=1, charge=0.2))
    store.record_success("rx", snapshot("rx", bars=1, charge=0.05))
    assert kinds(seen) == ["device_up", "battery_low", "battery_critical"]
    assert seen[-1].detail == "charge 5%"


def test_counters_become_events_with_counts() -> None:
    store, seen = store_with(cfg())
    store.record_success("rx", snapshot("rx"))
    store.publish("rx", snapshot("rx", dropouts=3, clips=1, interference=True))
    assert kinds(seen) == ["device_up", "rf_dropout", "audio_clip", "interference"]
    assert seen[1].count == 3
    text = store.scrape()
    assert 'micboard_rf_dropouts_total{device="rx",channel="1"} 3' in text
    assert 'micboard_events_total{device="rx",event="rf_dropout"} 3' in text


def test_published_snapshot_updates_metrics_but_not_liveness() -> None:
    store, _ = store_with(cfg())
    store.record_success("rx", snapshot("rx", name="Old"), wall_time=50.0)
    store.publish("rx", snapshot("rx", name="New"))
    text = store.scrape()
    assert 'name="New"' in text and 'name="Old"' not in text
    assert 'micboard_device_last_success_timestamp_seconds{device="rx"} 50.0' in text


def test_publish_for_unknown_device_is_ignored() -> None:
    store, seen = store_with(cfg())
    store.publish("ghost", snapshot("ghost"))
    store.record_success("ghost", snapshot("ghost"))
    store.record_failure("ghost", "timeout", "x")
    assert "ghost" not in store.scrape() and seen == []


def test_reload_keeps_state_drops_removed_and_relabels() -> None:
    store, _ = store_with(cfg("a"), cfg("b", host="127.0.0.2"))
    store.record_success("a", snapshot("a"))
    store.record_success("b", snapshot("b"))
    store.set_devices([cfg("a", room="chapel")])
    text = store.scrape()
    assert 'micboard_device_up{device="a",room="chapel"} 1' in text
    assert 'device="b"' not in text
    # A device whose host changed starts fresh.
    store.set_devices([cfg("a", host="127.0.0.9")])
    assert 'micboard_device_up{device="a"} 0' in store.scrape()


def test_recent_events_ring_is_bounded() -> None:
    store, _ = store_with(cfg())
    store.record_success("rx", snapshot("rx"))
    for i in range(RECENT_EVENTS + 50):
        store.publish("rx", snapshot("rx", dropouts=i + 1))
    assert len(store.recent_events) == RECENT_EVENTS
    assert store.recent_events[-1].kind is EventKind.RF_DROPOUT


def test_unchanged_snapshot_only_moves_freshness() -> None:
    store, _ = store_with(cfg())
    store.record_success("rx", snapshot("rx"), wall_time=1.0)
    before = store.scrape()
    store.record_success("rx", snapshot("rx"), wall_time=2.0)
    after = store.scrape()
    assert before.replace('{device="rx"} 1.0', '{device="rx"} 2.0') == after
