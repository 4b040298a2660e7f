"""``--web.config.file`` validation: every problem named with file, path and reason; secrets never echoed."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from security_helpers import bcrypt_hash, make_pki

from micboard_exporter.cli import main
from micboard_exporter.errors import ConfigErrors
from micboard_exporter.webconfig import BasicAuth, WebConfigWatcher, load_web_config


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    pki = make_pki(tmp_path / "pki")
    cert, key = pki.issue("server")
    return cert, key, pki.ca_file


def _problems(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigErrors) as info:
        load_web_config(path)
    return [(e.path, e.reason) for e in info.value.errors]


def test_valid_file_with_relative_paths(tmp_path: Path, tls_files: tuple[Path, Path, Path]) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n  min_version: TLS13\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: pki/ca.crt\n"
        "http_server_config:\n  http2: true\n  headers: {x-frame-options: deny}\n"
        f"basic_auth_users:\n  prom: '{bcrypt_hash('pw')}'\n")
    config = load_web_config(web)
    assert config.tls is not None and config.tls.min_version == ssl.TLSVersion.TLSv1_3
    assert config.tls.client_auth == ssl.CERT_REQUIRED
    assert config.ssl_context is not None and config.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert config.headers == {"X-Frame-Options": "deny"}
    assert set(config.users) == {"prom"}


def test_empty_file_means_no_tls_no_auth(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("")
    config = load_web_config(web)
    assert config.tls is None and not config.users and config.ssl_context is None


@pytest.mark.parametrize(("text", "path", "reason"), [
    ("nope: 1\n", "nope", "unknown key"),
    ("tls_server_config: {key_file: k}\n", "tls_server_config.cert_file", "required"),
    ("tls_server_config: {cert_file: missing.crt, key_file: missing.key}\n", "tls_server_config.cert_file",
     "cannot read"),
    ("tls_server_config: {cert_file: pki/server.crt, key_file: pki/server.key, min_version: SSL3}\n",
     "tls_server_config.min_version", "is not a TLS version"),
    ("tls_server_config: {cert_file: pki/server.crt, key_file: pki/server.key, min_version: TLS13,"
     " max_version: TLS12}\n", "tls_server_config.max_version", "lower than min_version"),
    ("tls_server_config: {cert_file: pki/server.crt, key_file: pki/server.key,"
     " client_auth_type: RequireAnyClientCert}\n", "tls_server_config.client_auth_type", "not supported"),
    ("tls_server_config: {cert_file: pki/server.crt, key_file: pki/server.key,"
     " client_auth_type: RequireAndVerifyClientCert}\n", "tls_server_config.client_ca_file", "required"),
    ("tls_server_config: {cert_file: pki/server.crt, key_file: pki/server.key, client_ca_file: pki/ca.crt}\n",
     "tls_server_config.client_auth_type", "would be ignored"),
    ("tls_server_config: {cert_file: pki/server.crt, key_file: pki/server.key, cipher_suites: [x]}\n",
     "tls_server_config.cipher_suites", "not supported"),
    ("tls_server_config: {cert_file: pki/ca.crt, key_file: pki/server.key}\n", "tls_server_config",
     "cannot load certificate"),
    ("http_server_config: {headers: {Set-Cookie: a}}\n", "http_server_config.headers.Set-Cookie", "not allowed"),
    ("http_server_config: {headers: {X-Frame-Options: \"a\\r\\nb: c\"}}\n",
     "http_server_config.headers.X-Frame-Options", "single-line"),
    ("http_server_config: {tls: 1}\n", "http_server_config.tls", "unknown key"),
    ("basic_auth_users: {'a:b': '$2b$04$abcdefghijklmnopqrstuuW6b1aPK6MTnOeI5CXykzhXaRoF3nR3K'}\n",
     "basic_auth_users.a:b", "without ':'"),
    ("basic_auth_users: {prom: '$2b$03$abcdefghijklmnopqrstuuW6b1aPK6MTnOeI5CXykzhXaRoF3nR3K'}\n",
     "basic_auth_users.prom", "cost"),
    ("[1, 2]\n", "", "mapping at the top level"),
    ("a: [\n", "", "YAML syntax error"),
])
def test_each_rule_names_path_and_reason(tmp_path: Path, tls_files: tuple[Path, Path, Path], text: str,
                                         path: str, reason: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text(text)
    problems = _problems(web)
    assert any(p == path and reason in r for p, r in problems), problems


def test_a_password_pasted_as_hash_is_not_echoed(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users: {prom: Sup3r-Secret-Plain}\n")
    with pytest.raises(ConfigErrors) as info:
        load_web_config(web)
    assert "Sup3r-Secret-Plain" not in str(info.value)
    assert "not a bcrypt hash" in str(info.value) and str(web) in str(info.value)


def test_all_problems_reported_together(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config: {min_version: TLS9}\nbasic_auth_users: {u: x}\nother: 1\n")
    assert len(_problems(web)) >= 4


def test_cli_refuses_to_start_with_an_invalid_web_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("devices: []\n")
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users: {prom: plain-Passw0rd}\n")
    code = main(["run", "--config", str(config), "--listen", "127.0.0.1:0", "--web.config.file", str(web)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{web}: basic_auth_users.prom: not a bcrypt hash" in err
    assert "plain-Passw0rd" not in err


def test_basic_auth_checks_bcrypt_even_for_unknown_users(monkeypatch: pytest.MonkeyPatch) -> None:
    """No timing leak on user existence: an unknown user costs one bcrypt check like a known one."""
    import bcrypt

    auth = BasicAuth({"prom": bcrypt_hash("right").encode()})
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    assert not auth.check("nobody", "right")
    assert not auth.check("prom", "wrong")
    assert len(calls) == 2
    # The dummy hash has the cost of the real ones, so both checks take the same time.
    assert calls[0][:7] == calls[1][:7]
    assert auth.check("prom", "right") and auth.check("prom", "right")
    assert len(calls) == 3  # a successful check is remembered; failures never are
    assert not auth.check("prom", "wrong")
    assert len(calls) == 4


def test_watcher_keeps_good_settings_when_the_file_turns_bad(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users: {{prom: '{bcrypt_hash('one')}'}}\n")
    watcher = WebConfigWatcher(web)
    assert watcher.auth.check("prom", "one")
    web.write_text("basic_auth_users: {prom: not-a-hash}\n")
    assert not watcher.maybe_reload(force=True)
    assert watcher.auth.check("prom", "one")
    web.write_text(f"basic_auth_users: {{prom: '{bcrypt_hash('two')}'}}\n")
    assert watcher.maybe_reload(force=True)
    assert watcher.auth.check("prom", "two") and not watcher.auth.check("prom", "one")
