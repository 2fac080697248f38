"""The prepared GPU command runs end to end on the CPU with its tiny grid (no GPU needed to keep it working)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_device_check_runs_its_tiny_grid_and_reports_determinism(tmp_path):
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "vpcost_utils.studies.device_check", "--out", str(out), "--tiny",
                    "--device", "cpu"], check=True, capture_output=True, text=True, timeout=600)
    summary = json.loads((out / "device_check.json").read_text())
    assert summary["tiny"] and len(summary["runs"]) == 2
    for row in summary["runs"]:
        assert row["same_twice"] is True and row["train_images_per_s"] > 0 and 0 <= row["acc"] <= 100
        assert (out / "runs" / f"{row['run_id']}.json").exists()
