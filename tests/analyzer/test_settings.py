"""Daemon settings: CANARYD_ environment, a TOML or YAML settings file, errors that name the
setting, and ``canaryd serve`` refusing bad settings with exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from analyzer.cli import main
from analyzer.errors import InvalidInput
from analyzer.settings import Settings, load_settings


@pytest.fixture
def saved_logging() -> Iterator[None]:
    """Restore structlog's configuration after a command that configures it."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def secrets(settings: Settings) -> list[str]:
    """The API tokens in clear."""
    return [t.get_secret_value() for t in settings.api_tokens]


class TestEnvironment:
    """CANARYD_* variables."""

    def test_defaults(self) -> None:
        """Without variables: loopback on 8080, SQLite in the working directory, scrape source."""
        settings = load_settings()
        assert (settings.host, settings.port) == ("127.0.0.1", 8080)
        assert settings.sqlite_path == "./canaryd.db"
        assert settings.prometheus_url == ""
        assert settings.api_tokens == []
        assert settings.webhook_allowed_hosts == []
        assert settings.config_dir == Path("config")

    def test_values_are_parsed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Numbers, URLs (trailing slash dropped), paths and the listen address."""
        env = {
            "CANARYD_LISTEN": "[::1]:9090",
            "CANARYD_DATABASE_URL": "sqlite:////var/lib/canaryd/db.sqlite",
            "CANARYD_PROMETHEUS_URL": "http://prometheus:9090/",
            "CANARYD_MAX_CONCURRENCY": "8",
            "CANARYD_SOURCE_TIMEOUT_S": "2.5",
            "CANARYD_CONFIG_DIR": "/etc/canaryd/configs",
            "CANARYD_LOG_LEVEL": "debug",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        assert (settings.host, settings.port) == ("::1", 9090)
        assert settings.sqlite_path == "/var/lib/canaryd/db.sqlite"
        assert settings.prometheus_url == "http://prometheus:9090"
        assert settings.max_concurrency == 8
        assert settings.source_timeout_s == 2.5
        assert settings.config_dir == Path("/etc/canaryd/configs")
        assert settings.log_level == "debug"

    def test_comma_separated_lists(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Tokens and allowed hosts are comma lists; blanks and spaces are dropped."""
        monkeypatch.setenv("CANARYD_API_TOKENS", " root-1, act@act-2 ,,register+config@x-3")
        monkeypatch.setenv("CANARYD_WEBHOOK_ALLOWED_HOSTS", "deploy.internal,127.0.0.1:9000")
        settings = load_settings()
        assert secrets(settings) == ["root-1", "act@act-2", "register+config@x-3"]
        assert settings.webhook_allowed_hosts == ["deploy.internal", "127.0.0.1:9000"]

    def test_secrets_stay_out_of_the_repr(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Tokens and the webhook secret never show in the settings' repr."""
        monkeypatch.setenv("CANARYD_API_TOKENS", "tok-visible-nowhere")
        monkeypatch.setenv("CANARYD_WEBHOOK_SECRET", "hmac-visible-nowhere")
        text = repr(load_settings())
        assert "visible-nowhere" not in text

    @pytest.mark.parametrize(
        ("name", "attribute", "expected"),
        [
            ("CANARYD_PROMETHEUS_URL", "prometheus_url", ""),
            ("CANARYD_PUBLIC_URL", "public_url", ""),
            ("CANARYD_API_TOKENS", "api_tokens", []),
            ("CANARYD_WEBHOOK_ALLOWED_HOSTS", "webhook_allowed_hosts", []),
        ],
    )
    def test_empty_values(
        self, monkeypatch: pytest.MonkeyPatch, name: str, attribute: str, expected: object
    ) -> None:
        """An empty variable is an empty value (CANARYD_PROMETHEUS_URL= means scrape source)."""
        monkeypatch.setenv(name, "")
        assert getattr(load_settings(), attribute) == expected

    def test_init_arguments_win(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Arguments to load_settings override the environment."""
        monkeypatch.setenv("CANARYD_MAX_CONCURRENCY", "8")
        assert load_settings(max_concurrency=3).max_concurrency == 3


TOML = """
listen = "0.0.0.0:8181"
prometheus_url = "http://prom.internal:9090"
api_tokens = ["root-a", "act@act-b"]
webhook_allowed_hosts = ["deploy.internal"]
max_concurrency = 32
"""

YAML = """
LISTEN: 0.0.0.0:8181
prometheus_url: http://prom.internal:9090
api_tokens: [root-a, act@act-b]
webhook_allowed_hosts:
  - deploy.internal
max_concurrency: 32
"""


class TestSettingsFile:
    """CANARYD_SETTINGS_FILE: TOML or YAML, below the environment."""

    @pytest.mark.parametrize(("suffix", "text"), [(".toml", TOML), (".yaml", YAML)])
    def test_file_is_read(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, suffix: str, text: str
    ) -> None:
        """Every value of the file is taken (keys case-insensitively)."""
        path = tmp_path / f"canaryd{suffix}"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("CANARYD_SETTINGS_FILE", str(path))
        settings = load_settings()
        assert settings.listen == "0.0.0.0:8181"
        assert settings.prometheus_url == "http://prom.internal:9090"
        assert secrets(settings) == ["root-a", "act@act-b"]
        assert settings.webhook_allowed_hosts == ["deploy.internal"]
        assert settings.max_concurrency == 32

    def test_environment_overrides_the_file(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """A variable beats the same setting in the file; the rest still comes from the file."""
        path = tmp_path / "canaryd.toml"
        path.write_text(TOML, encoding="utf-8")
        monkeypatch.setenv("CANARYD_SETTINGS_FILE", str(path))
        monkeypatch.setenv("CANARYD_MAX_CONCURRENCY", "4")
        monkeypatch.setenv("CANARYD_API_TOKENS", "from-env")
        settings = load_settings()
        assert settings.max_concurrency == 4
        assert secrets(settings) == ["from-env"]
        assert settings.listen == "0.0.0.0:8181"

    @pytest.mark.parametrize(
        "case",
        [
            ("bad.toml", "max_concurrency = 0\n", "CANARYD_MAX_CONCURRENCY", "greater than"),
            ("typo.yaml", "listen_addr: 0.0.0.0:1\n", "CANARYD_LISTEN_ADDR", "Extra inputs"),
            ("broken.toml", "listen = \n", "CANARYD_SETTINGS_FILE", "broken.toml"),
            ("broken.yaml", "listen: [\n", "CANARYD_SETTINGS_FILE", "broken.yaml"),
            ("list.yaml", "- listen\n", "CANARYD_SETTINGS_FILE", "expected a table"),
        ],
        ids=["bad-value", "unknown-key", "bad-toml", "bad-yaml", "not-a-table"],
    )
    def test_bad_file_names_the_setting(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, case: tuple[str, str, str, str]
    ) -> None:
        """A bad value, an unknown key or an unreadable file raises InvalidInput naming it."""
        name, text, setting, says = case
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("CANARYD_SETTINGS_FILE", str(path))
        with pytest.raises(InvalidInput) as caught:
            load_settings()
        assert caught.value.field == setting
        assert says in caught.value.message

    def test_missing_file(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """A settings file that does not exist is an error naming CANARYD_SETTINGS_FILE."""
        monkeypatch.setenv("CANARYD_SETTINGS_FILE", str(tmp_path / "absent.toml"))
        with pytest.raises(InvalidInput) as caught:
            load_settings()
        assert caught.value.field == "CANARYD_SETTINGS_FILE"


class TestInvalidSettings:
    """A bad setting raises InvalidInput naming the CANARYD_ variable."""

    @pytest.mark.parametrize(
        ("name", "value", "says"),
        [
            ("CANARYD_LISTEN", "8080", "expected host:port"),
            ("CANARYD_LISTEN", "localhost:99999", "expected host:port"),
            ("CANARYD_MAX_CONCURRENCY", "0", "greater than or equal to 1"),
            ("CANARYD_MAX_CONCURRENCY", "many", "valid integer"),
            ("CANARYD_SOURCE_TIMEOUT_S", "-1", "greater than 0"),
            ("CANARYD_DATABASE_URL", "postgres://db/canaryd", "only sqlite:///PATH"),
            ("CANARYD_PROMETHEUS_URL", "prometheus:9090", "http(s) URL"),
            ("CANARYD_PUBLIC_URL", "ftp://canaryd", "http(s) URL"),
            ("CANARYD_LOG_LEVEL", "verbose", "should match pattern"),
            ("CANARYD_MAX_BODY_BYTES", "10", "greater than or equal to 1024"),
        ],
    )
    def test_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
    ) -> None:
        """The error's field is the variable and its message says what is wrong."""
        monkeypatch.setenv(name, value)
        with pytest.raises(InvalidInput) as caught:
            load_settings()
        assert caught.value.field == name
        assert says in caught.value.message


class TestServeCommand:
    """``canaryd serve`` refuses bad settings with exit code 2 before starting anything."""

    def test_bad_setting_exits_2_naming_it(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad CANARYD_LISTEN: exit 2 and a message naming it on stderr."""
        monkeypatch.setenv("CANARYD_LISTEN", "nowhere")
        assert main(["serve"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("canaryd serve: invalid input: CANARYD_LISTEN:")
        assert "expected host:port" in err

    def test_bad_settings_file_exits_2(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """An unreadable settings file: exit 2 naming CANARYD_SETTINGS_FILE."""
        monkeypatch.setenv("CANARYD_SETTINGS_FILE", str(tmp_path / "absent.yaml"))
        assert main(["serve"]) == 2
        assert "CANARYD_SETTINGS_FILE" in capsys.readouterr().err

    @pytest.mark.usefixtures("saved_logging")
    def test_bad_token_scope_exits_2(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A token with an unknown scope: exit 2 naming CANARYD_API_TOKENS, token not echoed."""
        monkeypatch.setenv("CANARYD_API_TOKENS", "admin@tok-never-printed")
        monkeypatch.setenv("CANARYD_LISTEN", "127.0.0.1:0")
        monkeypatch.setenv("CANARYD_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
        assert main(["serve"]) == 2
        err = capsys.readouterr().err
        assert "CANARYD_API_TOKENS" in err
        assert "tok-never-printed" not in err
        assert not (tmp_path / "never.db").exists()
