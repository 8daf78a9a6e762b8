"""make_env: ilcore's own ids open without an import, and unusable ids are one ConfigError."""

import pytest

from ilcore.errors import ConfigError
from ilcore.eval import check_env_id, make_env


@pytest.mark.parametrize("env_id", ["ilcore/Corridor-v0", "ilcore/ParticleSequence-v0"])
def test_ilcore_envs_are_registered_by_make_env(env_id):
    make_env(env_id).close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gymnasium's "HalfCheetah-v3 is out of date"
@pytest.mark.parametrize("env_id, fragment", [
    ("HalfCheetah-v3", "HalfCheetah-v3 cannot be made here: "),  # mujoco-py envs left gymnasium
    ("NoSuchEnv-v0", "Unknown env id 'NoSuchEnv-v0'"),
])
def test_unusable_env_ids_are_one_sentence(env_id, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        make_env(env_id)
    assert "\n" not in str(info.value)


def test_a_deprecated_version_names_the_one_to_use():
    with pytest.raises(ConfigError, match="Taxi-v4"):
        check_env_id("Taxi-v3")

