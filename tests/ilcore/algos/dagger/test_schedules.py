import pytest

from ilcore.algos.dagger.schedules import Constant, Exponential, Linear, parse_schedule
from ilcore.errors import ConfigError


def test_constant_is_the_same_every_round():
    assert [Constant(0.3)(k) for k in (0, 1, 7)] == [0.3, 0.3, 0.3]


def test_linear_ramps_then_holds():
    s = Linear(1.0, 0.0, 4)
    assert [s(k) for k in range(6)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0, 0.0])


def test_exponential_decays_to_its_floor():
    s = Exponential(1.0, 0.5, floor=0.1)
    assert [s(k) for k in range(5)] == pytest.approx([1.0, 0.5, 0.25, 0.125, 0.1])


@pytest.mark.parametrize(
    "text, expected",
    [("0.2", Constant(0.2)), ("constant:0.7", Constant(0.7)), ("linear:1,0,10", Linear(1.0, 0.0, 10)),
     ("exp:1,0.5", Exponential(1.0, 0.5))],
)
def test_parse_schedule(text, expected):
    assert parse_schedule(text) == expected


@pytest.mark.parametrize("text", ["linear:1,0", "banana:1", "1.5", "exp:1,2"])
def test_parse_schedule_refuses_bad_text_with_a_user_error(text):
    with pytest.raises(ConfigError):
        parse_schedule(text)
