"""The package a Python user can guess: top-level names, cheap import, resolvable hints, light --help."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest


def _fresh_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout


@pytest.mark.slow
def test_import_ilcore_is_cheap_and_names_load_on_use():
    out = _fresh_python(
        "import sys, ilcore\n"
        "print('torch' in sys.modules, 'h5py' in sys.modules)\n"
        "from ilcore import open_recording, load_transitions, train_bc, evaluate, Policy\n"
        "print(Policy.__module__, train_bc.__module__, 'torch' in sys.modules)\n")
    assert out.split() == ["False", "False", "ilcore.policies.policy", "ilcore.algos.bc", "True"]


def test_unknown_top_level_name_is_an_attribute_error():
    import ilcore

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ilcore.nope  # noqa: B018
    assert {"open_recording", "train_bc", "Policy"} <= set(dir(ilcore))


def test_type_hints_of_the_public_api_resolve():
    import ilcore
    from ilcore.data import SessionWriter, TransitionData

    for obj in (ilcore.open_recording, ilcore.load_transitions, ilcore.train_bc, ilcore.evaluate,
                ilcore.Policy.predict, ilcore.Policy.act, TransitionData.__init__, SessionWriter.__init__):
        typing.get_type_hints(obj)


def test_help_does_not_import_torch_and_shows_defaults():
    out = _fresh_python(
        "import sys, contextlib, io\n"
        "from ilcore.cli.main import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    for argv in (['--help'], ['train', 'bc', '--help'], ['eval', '--help']):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "print('torch' in sys.modules)\n"
        "print(buf.getvalue())\n")
    first, _, text = out.partition("\n")
    assert first == "False"
    assert "--epochs EPOCHS       (default: 50)" in text
    assert "--threads N" in text and "--logdir DIR" in text and "--resume RUN" in text


def test_cli_encoder_choices_match_the_library():
    from ilcore.algos.oneshot import ENCODERS
    from ilcore.cli import oneshot

    assert oneshot.ENCODERS == ENCODERS
