"""conf/prefork.toml documents every key of the settings table with its default, and passes -t."""

import re
import tomllib

from prefork.config import SETTINGS
from support.command import check
from support.paths import REPO

EXAMPLE = REPO / "conf" / "prefork.toml"


def test_every_key_is_documented_with_its_default():
    text = EXAMPLE.read_text()
    values = tomllib.loads(text)
    for setting in SETTINGS:
        if setting.default is None:
            # No TOML null: a key without a default is shown commented out, with an example value.
            assert re.search(rf"^# {setting.name} = ", text, re.M), f"{setting.name} is not documented"
            assert setting.name not in values
        else:
            assert values.get(setting.name) == setting.default, f"{setting.name}: not its default"
    assert set(values) <= {s.name for s in SETTINGS}


def test_example_passes_the_configuration_check():
    result = check("-c", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "configuration ok" in result.stdout


def test_configuration_doc_lists_every_key():
    text = (REPO / "docs" / "configuration.md").read_text()
    for setting in SETTINGS:
        assert f"| `{setting.name}` |" in text, f"docs/configuration.md lacks {setting.name}"
