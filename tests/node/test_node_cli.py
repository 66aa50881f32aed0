"""`twinledger node config`: effective settings from defaults, a config file, the environment and options."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _config(*args: str, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "twinledger.cli", "node", "config", "--json", *args],
        env={**os.environ, **env}, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(result.stdout)


def test_settings_layering_and_secrets_stay_hidden(tmp_path):
    config = tmp_path / "node.env"
    config.write_text("TWINLEDGER_PORT=9100\nTWINLEDGER_CONFIRMATIONS=3\nTWINLEDGER_PRIVATE_KEY=0x" + "11" * 32 + "\n")
    view = _config("--config", str(config), "--data-dir", str(tmp_path), TWINLEDGER_CONFIRMATIONS="5")
    assert view["port"] == 9100  # from the file
    assert view["confirmations"] == 5  # the environment wins over the file
    assert view["data_dir"] == str(tmp_path)  # the option wins over both
    assert view["private_key"] == "(set)"
    assert "11" * 32 not in json.dumps(view)


def test_a_missing_config_file_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "twinledger.cli", "node", "config", "--config", str(tmp_path / "nope.env")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 3 and "no config file" in result.stderr
