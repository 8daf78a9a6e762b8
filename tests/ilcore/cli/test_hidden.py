"""``--hidden`` is read by one parser for every command (and for the DAgger options)."""

import pytest

from ilcore.algos.bc_config import parse_hidden
from ilcore.algos.dagger.options import DaggerOptions
from ilcore.cli.main import main
from ilcore.errors import ConfigError


@pytest.mark.parametrize("text, widths", [("64,64", (64, 64)), ("16", (16,)), (" 8, 4 ,", (8, 4))])
def test_widths_are_read(text, widths):
    assert parse_hidden(text) == widths
    assert DaggerOptions(hidden=text).hidden == widths


@pytest.mark.parametrize("text", ["a,b", "", "64,0", "-1"])
def test_bad_widths_are_one_config_error(text):
    with pytest.raises(ConfigError, match="--hidden"):
        parse_hidden(text)
    with pytest.raises(ConfigError, match="--hidden"):
        DaggerOptions(hidden=text)


@pytest.mark.parametrize("argv", [
    ["train", "bco", "--data", "REC", "--env", "CartPole-v1", "--out", "RUN"],
    ["train", "oneshot", "--expert-demos", "2", "--out", "RUN"],
    ["finetune", "--env", "CartPole-v1", "--out", "RUN", "--steps", "10"],
])
def test_every_command_refuses_bad_widths_the_same_way(argv, tmp_path, capsys):
    argv = [str(tmp_path / "missing") if a == "REC" else str(tmp_path / "run") if a == "RUN" else a for a in argv]
    assert main([*argv, "--hidden", "a,b"]) == 2
    err = capsys.readouterr().err
    assert "--hidden takes comma-separated integers" in err
