import gymnasium as gym
import numpy as np
import pygame

from app.input.gamepad import GamepadDevice, default_gamepad_config, gamepad_config_from_dict
from app.input.intents import IntentKind
from app.input.keyboard import KeyboardDevice
from app.input.keymaps import default_keymap
from app.input.mock import MockDevice
from app.input.intents import Intent

CAR = gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))


def ev(kind, **kw):
    return pygame.event.Event(kind, **kw)


def test_keyboard_moves_on_change_and_commands_on_press():
    space = gym.spaces.Discrete(2)
    kb = KeyboardDevice(default_keymap("CartPole-v1", space))
    out = kb.handle(ev(pygame.KEYDOWN, key=pygame.K_RIGHT, unicode=""))
    assert [(i.kind, i.value) for i in out] == [(IntentKind.MOVE, 1)]
    assert kb.handle(ev(pygame.KEYDOWN, key=pygame.K_x, unicode="x")) == []  # unmapped: no change
    assert [i.kind for i in kb.handle(ev(pygame.KEYDOWN, key=pygame.K_SPACE, unicode=" "))] == [IntentKind.TAKEOVER]
    assert [i.kind for i in kb.handle(ev(pygame.KEYUP, key=pygame.K_SPACE))] == [IntentKind.RELEASE]
    out = kb.handle(ev(pygame.KEYUP, key=pygame.K_RIGHT))
    assert [(i.kind, i.value) for i in out] == [(IntentKind.MOVE, None)]
    assert [i.kind for i in kb.handle(ev(pygame.KEYDOWN, key=pygame.K_SLASH, unicode="?"))] == [IntentKind.HELP]
    goto = kb.handle(ev(pygame.KEYDOWN, key=pygame.K_F5, unicode=""))
    assert (goto[0].kind, goto[0].value) == (IntentKind.GOTO, "review")


def test_focus_loss_releases_held_keys():
    kb = KeyboardDevice(default_keymap("CartPole-v1", gym.spaces.Discrete(2)))
    kb.handle(ev(pygame.KEYDOWN, key=pygame.K_LEFT, unicode=""))
    kinds = [i.kind for i in kb.handle(ev(pygame.WINDOWFOCUSLOST))]
    assert IntentKind.MOVE in kinds and IntentKind.RELEASE in kinds
    assert not kb.pressed


def test_gamepad_sticks_triggers_deadzone_and_scaling():
    pad = GamepadDevice(default_gamepad_config(CAR), CAR)
    pad.handle(ev(pygame.JOYDEVICEADDED, device_index=0, instance_id=3, name="Test Pad"))
    assert pad.connected() == ["Test Pad"]
    assert pad.handle(ev(pygame.JOYAXISMOTION, instance_id=3, axis=0, value=0.1)) == []  # inside the deadzone
    out = pad.handle(ev(pygame.JOYAXISMOTION, instance_id=3, axis=0, value=-1.0))
    np.testing.assert_allclose(out[-1].value, [-1.0, 0.0, 0.0])
    out = pad.handle(ev(pygame.JOYAXISMOTION, instance_id=3, axis=5, value=1.0))  # right trigger fully pressed = gas
    np.testing.assert_allclose(out[-1].value, [-1.0, 1.0, 0.0])
    half = pad.handle(ev(pygame.JOYAXISMOTION, instance_id=3, axis=0, value=0.575))[-1].value
    assert 0.45 < half[0] < 0.55  # rescaled past the deadzone: (0.575 - 0.15) / 0.85 = 0.5

    scaled = GamepadDevice(gamepad_config_from_dict({"deadzone": 0.0, "axes": {"0": {"control": "left_x", "scale": 0.5}}}, CAR), CAR)
    scaled.handle(ev(pygame.JOYDEVICEADDED, device_index=0, instance_id=1))
    np.testing.assert_allclose(scaled.handle(ev(pygame.JOYAXISMOTION, instance_id=1, axis=0, value=1.0))[-1].value, [0.5, 0.0, 0.0])


def test_gamepad_left_stick_drives_the_particle_env():
    import ilcore.envs  # noqa: F401  (registers the env id)
    from ilcore.envs.particles import ENV_ID

    space = gym.make(ENV_ID).action_space  # Box(-1, 1, (2,)): x right, y up
    km = default_keymap(ENV_ID, space)
    pad = GamepadDevice(default_gamepad_config(space, {n: km.combos[c] for c, n in km.names.items()}), space)
    pad.handle(ev(pygame.JOYDEVICEADDED, device_index=0, instance_id=2, name="Pad"))
    np.testing.assert_allclose(pad.handle(ev(pygame.JOYAXISMOTION, instance_id=2, axis=0, value=1.0))[-1].value, [1.0, 0.0])
    out = pad.handle(ev(pygame.JOYAXISMOTION, instance_id=2, axis=1, value=-1.0))  # stick pushed up reports -1
    np.testing.assert_allclose(out[-1].value, [1.0, 1.0])
    assert space.contains(out[-1].value)
    pad.handle(ev(pygame.JOYAXISMOTION, instance_id=2, axis=0, value=0.05))  # back inside the deadzone
    np.testing.assert_allclose(pad.held_action(), [0.0, 1.0])
    out = pad.handle(ev(pygame.JOYAXISMOTION, instance_id=2, axis=1, value=0.0))
    assert (out[-1].kind, out[-1].value) == (IntentKind.MOVE, None)  # let go: nothing held


def test_gamepad_discrete_buttons_commands_and_layout_by_name():
    space = gym.spaces.Discrete(2)
    km = default_keymap("CartPole-v1", space)
    cfg = gamepad_config_from_dict({"layouts": {"Odd Pad": {"b": 5, "rb": 1}}}, space)
    cfg = type(cfg)(**{**cfg.__dict__, "buttons": default_gamepad_config(space, {n: km.combos[c] for c, n in km.names.items()}).buttons})
    pad = GamepadDevice(cfg, space)
    pad.handle(ev(pygame.JOYDEVICEADDED, device_index=0, instance_id=9, name="Odd Pad v2"))
    out = pad.handle(ev(pygame.JOYHATMOTION, instance_id=9, hat=0, value=(1, 0)))
    assert (out[-1].kind, out[-1].value) == (IntentKind.MOVE, 1)
    out = pad.handle(ev(pygame.JOYAXISMOTION, instance_id=9, axis=0, value=-0.9))  # stick pushed left while d-pad right held
    assert out == [] or out[-1].kind is IntentKind.MOVE
    assert [i.kind for i in pad.handle(ev(pygame.JOYBUTTONDOWN, instance_id=9, button=5))] == [IntentKind.SKIP]  # "b" lives at 5 on this pad
    assert [i.kind for i in pad.handle(ev(pygame.JOYBUTTONDOWN, instance_id=9, button=1))] == [IntentKind.TAKEOVER]  # "rb" at 1


def test_unplugging_the_pad_mid_takeover_releases_and_stops_moving():
    pad = GamepadDevice(default_gamepad_config(CAR), CAR)
    pad.handle(ev(pygame.JOYDEVICEADDED, device_index=0, instance_id=4, name="Pad"))
    pad.handle(ev(pygame.JOYAXISMOTION, instance_id=4, axis=0, value=1.0))
    assert [i.kind for i in pad.handle(ev(pygame.JOYBUTTONDOWN, instance_id=4, button=5))] == [IntentKind.TAKEOVER]
    out = pad.handle(ev(pygame.JOYDEVICEREMOVED, instance_id=4))
    assert [(i.kind, i.value) for i in out] == [(IntentKind.RELEASE, None), (IntentKind.MOVE, None)]
    assert pad.connected() == []
    assert pad.handle(ev(pygame.JOYDEVICEREMOVED, instance_id=4)) == []  # a second unplug is harmless
    # plugged back in: works again
    pad.handle(ev(pygame.JOYDEVICEADDED, device_index=0, instance_id=5, name="Pad"))
    assert pad.handle(ev(pygame.JOYAXISMOTION, instance_id=5, axis=0, value=-1.0))[-1].value[0] == -1.0


def test_mock_device_hands_out_one_frame_at_a_time():
    dev = MockDevice()
    dev.push(Intent(IntentKind.MOVE, 1), Intent(IntentKind.PAUSE))
    dev.push()
    assert [i.kind for i in dev.poll()] == [IntentKind.MOVE, IntentKind.PAUSE]
    assert dev.poll() == [] and dev.poll() == []
