"""analyzer.configs.judgeconfig beyond its schema: metric options (dependence), lookups,
durations, the content hash, and ``canaryd validate``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from analyzer.cli import main
from analyzer.configs.durations import parse_duration
from analyzer.configs.judgeconfig import (
    config_hash,
    parse_config,
)
from analyzer.errors import InvalidInput
from analyzer.metricdata import MetricKind
from support.config_edits import base_config, rejection, set_path
from support.paths import ROOT

CONFIG_DIR = ROOT / "config"
SCHEMA = CONFIG_DIR / "judge-config.schema.json"
EXAMPLES = sorted(CONFIG_DIR.glob("*.yaml"))


class TestDependence:
    """The optional ``dependence`` of a metric: none (default) or adjust, mann-whitney only."""

    def test_default_is_none(self) -> None:
        """Absent, a metric takes its samples as independent (Kayenta's test)."""
        assert parse_config(base_config()).metrics[1].dependence == "none"

    def test_unknown_value_names_the_field(self) -> None:
        """dependence: hac is refused at metrics.1.dependence."""
        message = rejection(set_path("metrics.1.dependence", "hac"))
        assert message.startswith("metrics.1.dependence: Input should be 'none' or 'adjust'")

    def test_only_mann_whitney_adjusts(self) -> None:
        """On a threshold metric the option is an error naming dependence."""
        message = rejection(set_path("metrics.0.dependence", "adjust"))
        assert "dependence: only the mann-whitney judge adjusts for it" in message

    def test_validate_exits_two_naming_the_field(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`canaryd validate` on an unknown value exits 2 and names metrics.1.dependence."""
        data = base_config()
        data["metrics"][1]["dependence"] = "yes"
        path = tmp_path / "dependence.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        assert main(["validate", str(path)]) == 2
        assert "metrics.1.dependence: Input should be" in capsys.readouterr().err


class TestMetricLookup:
    """JudgeConfig.metric finds a metric by name; a name it lacks is the project's error."""

    def test_known_name(self) -> None:
        """The metric called so is returned."""
        assert parse_config(base_config()).metric("latency_p99").kind is MetricKind.SERIES

    def test_unknown_name_is_invalid_input_naming_the_field(self) -> None:
        """No bare KeyError: InvalidInput on ``metrics``, listing the metrics there are."""
        with pytest.raises(InvalidInput) as caught:
            parse_config(base_config()).metric("errors")
        assert caught.value.field == "metrics"
        assert caught.value.message == "no metric 'errors' (known: ['error_rate', 'latency_p99'])"


class TestDurations:
    """Durations are seconds or strings such as '90s', '10m', '1h30m', '500ms'."""

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            (90, 90.0),
            ("90s", 90.0),
            ("10m", 600.0),
            ("1h30m", 5400.0),
            ("500ms", 0.5),
            ("1d", 86400.0),
        ],
    )
    def test_parses(self, value: object, seconds: float) -> None:
        """Each accepted spelling gives seconds."""
        assert parse_duration(value) == seconds

    @pytest.mark.parametrize("value", [True, "10", "m", "-1s", -1, float("inf"), "10 m"])
    def test_refuses(self, value: object) -> None:
        """Booleans, unitless strings, negative and infinite values are refused."""
        with pytest.raises(ValueError, match="duration"):
            parse_duration(value)


class TestConfigHash:
    """A config's version is the hash of its canonical content."""

    def test_same_content_same_hash(self) -> None:
        """Equivalent spellings ('10m' and 600) give one hash."""
        other = base_config()
        other["analysis_interval"] = 600
        assert config_hash(parse_config(base_config())) == config_hash(parse_config(other))

    def test_hash_is_stable_across_releases(self) -> None:
        """The hash of a config is a stored canary's link to it: this one's is fixed for good."""
        digest = "81f3b0a735d05107849fa0c797435e60da62ffeadb03874c894f04b490be42d1"
        assert config_hash(parse_config(base_config())) == digest

    def test_dependence_none_keeps_the_hash(self) -> None:
        """dependence: none, spelt or not, is the hash of a config without the key; adjust
        changes it."""
        spelt, adjusted = base_config(), base_config()
        spelt["metrics"][1]["dependence"] = "none"
        adjusted["metrics"][1]["dependence"] = "adjust"
        base = config_hash(parse_config(base_config()))
        assert config_hash(parse_config(spelt)) == base
        assert config_hash(parse_config(adjusted)) != base
        assert "dependence" not in json.dumps(parse_config(spelt).model_dump(mode="json"))

    def test_changed_content_changes_hash(self) -> None:
        """A changed threshold changes the hash."""
        other = copy.deepcopy(base_config())
        other["metrics"][0]["threshold"]["max"] = 0.02
        assert config_hash(parse_config(base_config())) != config_hash(parse_config(other))


class TestValidateCommand:
    """`canaryd validate` exits 0 on good configs and 2 naming the field on bad ones."""

    def test_good_configs(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Every shipped example validates; one ok line per file."""
        assert main(["validate", *map(str, EXAMPLES)]) == 0
        out = capsys.readouterr().out
        assert out.count(": ok — ") == len(EXAMPLES)

    def test_bad_config(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown key exits 2; stderr names the file and the field."""
        data = base_config()
        data["metrics"][1]["lookBackMins"] = 5
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err
        assert "metrics.1.lookBackMins: Extra inputs are not permitted" in err

    def test_bad_json_config(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A JSON config is read as JSON; a bad duration exits 2 naming the field."""
        data = base_config()
        data["step"] = "soon"
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        assert main(["validate", str(path)]) == 2
        assert "step: invalid duration 'soon'" in capsys.readouterr().err

    def test_unparsable_yaml(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Text that is not YAML exits 2 saying so."""
        path = tmp_path / "broken.yaml"
        path.write_text("name: [unclosed\n", encoding="utf-8")
        assert main(["validate", str(path)]) == 2
        assert "not valid yaml" in capsys.readouterr().err

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing file exits 2 naming it."""
        missing = tmp_path / "nope.yaml"
        assert main(["validate", str(missing)]) == 2
        assert f"{missing}: cannot read" in capsys.readouterr().err
