import json

import gymnasium as gym
import numpy as np
import pygame
import pytest

import ilcore.envs  # noqa: F401  (registers ilcore/ParticleSequence-v0)
from app.input.keymaps import build_keymap, default_keymap, load_keymap
from ilcore.errors import ConfigError

ENVS = ["CartPole-v1", "MountainCar-v0", "Acrobot-v1", "LunarLander-v3", "Pendulum-v1", "MountainCarContinuous-v0", "CarRacing-v3",
        "ilcore/ParticleSequence-v0"]


@pytest.mark.parametrize("env_id", ENVS)
def test_default_keymaps_fit_their_action_space(env_id):
    space = gym.make(env_id).action_space
    km = default_keymap(env_id, space)
    assert km.combos
    for action in list(km.combos.values()) + [km.noop]:
        assert space.contains(action)


def test_particle_keymap_arrows_and_wasd_give_unit_directions():
    space = gym.make("ilcore/ParticleSequence-v0").action_space
    km = default_keymap("ilcore/ParticleSequence-v0", space)
    np.testing.assert_allclose(km.noop, [0.0, 0.0])
    d = np.sqrt(0.5)
    expected = {
        (pygame.K_RIGHT,): [1, 0], (pygame.K_LEFT,): [-1, 0], (pygame.K_UP,): [0, 1], (pygame.K_DOWN,): [0, -1],
        (pygame.K_d,): [1, 0], (pygame.K_a,): [-1, 0], (pygame.K_w,): [0, 1], (pygame.K_s,): [0, -1],
        (pygame.K_UP, pygame.K_RIGHT): [d, d], (pygame.K_DOWN, pygame.K_LEFT): [-d, -d],
        (pygame.K_w, pygame.K_a): [-d, d], (pygame.K_s, pygame.K_d): [d, -d],
    }
    for keys, action in expected.items():
        got = km.action_for(set(keys))
        np.testing.assert_allclose(got, action, atol=1e-6, err_msg=str(keys))
        assert abs(np.linalg.norm(got) - 1.0) < 1e-6  # every direction moves at the same (full) speed
    assert not set(km.commands) & set().union(*km.combos)  # no action key doubles as a command


def test_toml_keymap_in_keys_to_action_shape(tmp_path):
    path = tmp_path / "car.toml"
    path.write_text('noop = [0.0, 0.0, 0.0]\n[keys]\n"a" = [-1.0, 0.0, 0.0]\n"d" = [1.0, 0.0, 0.0]\n"w" = [0.0, 1.0, 0.0]\n"wa" = [-1.0, 1.0, 0.0]\n"w+d" = [1.0, 1.0, 0.0]\n')
    km = load_keymap(path, gym.make("CarRacing-v3").action_space)
    # the largest held combination wins, and an unrelated key does not cancel it
    held = {pygame.K_w, pygame.K_a, pygame.K_x}
    np.testing.assert_allclose(km.action_for(held), [-1.0, 1.0, 0.0])
    np.testing.assert_allclose(km.action_for({pygame.K_d}), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(km.action_for(set()), [0.0, 0.0, 0.0])


def test_json_keymap_flat_mapping(tmp_path):
    path = tmp_path / "cp.json"
    path.write_text(json.dumps({"j": 0, "l": 1}))
    km = load_keymap(path, gym.spaces.Discrete(2))
    assert km.action_for({pygame.K_l}) == 1


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('[keys]\nleft = 0\nright = 2\n', "'right' maps to 2"),  # not in Discrete(2)
        ('[keys]\nleft = 0.5\n', "'left' maps to 0.5"),
        ('[keys]\nnosuchkey = 0\n', "unknown key name"),
        ('[keys]\nspace = 0\n', "both an action key and the 'takeover' command"),
        ('[keys]\nleft = 0\n[commands]\nfly = "f"\n', "unknown command 'fly'"),
        ('[keys]\nleft = [0\n', "not valid TOML"),
        ('noop = 5\n[keys]\nleft = 0\n', "'noop' maps to 5"),
        ('[keys]\n', "maps no keys"),
        # action names ([names] and {action, name}; see test_action_names.py)
        ('[keys]\nleft = 0\n[names]\n5 = "far"\n', "[names] entry '5' is not an action of Discrete(2)"),
        ('[keys]\nleft = 0\n[names]\nzero = "x"\n', "is not an action number"),
        ('[keys]\nleft = 0\n[names]\n0 = ""\n', "must be a name of 1 to 40 characters"),
        ('[keys]\nleft = { action = 0, nom = "x" }\n', "must be an action or {action = ..., name = \"...\"}"),
        ('[keys]\nleft = { action = 0, name = 3 }\n', "name must be a name"),
        ('names = 3\n[keys]\nleft = 0\n', "[names] must be a table"),
    ],
)
def test_bad_keymaps_fail_with_one_clear_sentence(tmp_path, content, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_keymap(path, gym.spaces.Discrete(2))
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_box_keymap_rejects_out_of_bounds_and_wrong_shape():
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    with pytest.raises(ConfigError, match="'left' maps to"):
        build_keymap({"left": [-3.0]}, space)
    with pytest.raises(ConfigError, match="'left' maps to"):
        build_keymap({"left": [-1.0, 0.0]}, space)


def test_commands_can_be_rebound_to_free_a_key():
    km = build_keymap({"space": 1, "left": 0}, gym.spaces.Discrete(2), commands={"takeover": "t"})
    assert km.commands[pygame.K_t] == "takeover"
    assert pygame.K_SPACE not in km.commands
