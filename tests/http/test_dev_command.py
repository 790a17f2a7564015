"""`make dev`'s command: it serves, prints what a newcomer needs, and stops cleanly on Ctrl-C or kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from devstack.template import ROOT


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_dev_server_prints_its_url_token_secret_and_data_folder_then_stops_cleanly(stop_signal, tmp_path):
    data_folder = tmp_path / "devdata"
    env = {**os.environ, "PORT": "0", "PYTHONUNBUFFERED": "1", "DEV_DATA_DIR": str(data_folder)}
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        banner = []
        for line in process.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C stops"):
                break
        text = "".join(banner)
        url = re.search(r"BloxServer local stack: (http://127\.0\.0\.1:\d+)", text).group(1)
        token = re.search(r"TOKEN=(\S+)", text).group(1)
        assert "whsec_" in text and "curl -H" in text
        assert f"data:                 {data_folder.resolve()} (kept across restarts" in text
        request = urllib.request.Request(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["clerkId"] == "user_demo"
    finally:
        process.send_signal(stop_signal)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    assert "Stopped." in rest
