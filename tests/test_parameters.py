"""A papermill parameter the notebook does not declare stops it at once, naming it (papermill only warns)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vpcost_utils.errors import SpecError
from vpcost_utils.nb.notebook import check_injected_parameters

ROOT = Path(__file__).resolve().parent.parent
DECLARED = 'profile: str = "smoke"  # smoke | mini\noutput_dir: str = "../outputs"\nepochs: Optional[int] = None\n'


def test_an_undeclared_injected_name_is_refused_and_declared_ones_pass():
    history = ["", "from typing import Optional", DECLARED, '# Parameters\nprofile = "mini"\nepoch = 5\n']
    with pytest.raises(SpecError, match=r"\['epoch'\].*'epochs'"):
        check_injected_parameters(history)
    check_injected_parameters(history[:3] + ['# Parameters\nprofile = "mini"\nepochs = 5\n'])
    check_injected_parameters(history[:3])  # run by hand in JupyterLab: nothing injected, nothing to check


def test_the_papermill_cli_with_a_typo_fails_fast_naming_it(tmp_path):
    out = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "07_summary.ipynb"),
                          str(tmp_path / "out.ipynb"), "-k", "python3", "--cwd", str(ROOT / "notebooks"),
                          "-p", "bogus_param", "1", "-p", "profile", "smoke", "-p", "output_dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "VPCOST_HEADLESS": "1"})
    assert out.returncode != 0
    assert "does not declare parameter(s) ['bogus_param']" in out.stdout + out.stderr
    assert not (tmp_path / "smoke" / "tables").exists()  # stopped before writing anything
