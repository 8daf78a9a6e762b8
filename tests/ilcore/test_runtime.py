"""Process-wide settings of ilcore.runtime that every entry point applies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ilcore.runtime import OMP_WAIT_POLICY, configure_threads


def test_wait_policy_defaults_to_passive_and_a_users_choice_wins(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # restored by monkeypatch after configure_threads writes it
    configure_threads(1)
    import os

    assert os.environ["OMP_WAIT_POLICY"] == OMP_WAIT_POLICY == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    configure_threads(1)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.slow
def test_cli_sets_the_policy_before_torch_loads_openmp():
    """OpenMP reads the policy once, when torch loads it: the CLI must set it before importing torch."""
    code = ("import os, sys\n"
            "os.environ.pop('OMP_WAIT_POLICY', None)\n"
            "import ilcore.cli.main\n"
            "from ilcore.runtime import configure_threads\n"
            "configure_threads(None)\n"
            "assert 'torch' not in sys.modules, 'the CLI imported torch before setting threads'\n"
            "import torch\n"
            "print(os.environ['OMP_WAIT_POLICY'], torch.get_num_threads() >= 1)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["PASSIVE", "True"]
