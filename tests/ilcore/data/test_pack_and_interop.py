import json
import os

import numpy as np
import pytest

from ilcore.cli.main import main
from ilcore.data import load_transitions, open_recording, pack
from ilcore.types import Label
from tests.support.recordings import assert_episode, make_session, make_writer


def test_pack_round_trip_keeps_episodes_and_overlay(tmp_path):
    path = make_session(tmp_path / "s", [0, 1, 2])
    with make_writer(path, resume=True) as w:
        w.add_label(Label("ep_000002", 0, 2, source="human", reason="review"))
    packed = pack(path, tmp_path / "one.h5")
    a, b = open_recording(path), open_recording(packed)
    assert a.episode_ids() == b.episode_ids() and b.env_id == a.env_id
    for ep_a, ep_b in zip(a.episodes(), b.episodes()):
        assert_episode(ep_b)
        np.testing.assert_array_equal(ep_a.observations, ep_b.observations)
        assert ep_a.effective_labels().keys() == ep_b.effective_labels().keys()
    assert a.info()["labels_by_source"] == b.info()["labels_by_source"] == {"human": 1, "scripted": 17}
    da, db = load_transitions(path), load_transitions(packed)
    np.testing.assert_array_equal(da.actions, db.actions)
    both = load_transitions([path, packed], valid_fraction=0.0)
    assert len(both) == 2 * len(da) and both.episode_ids[0] == "0:ep_000000"
    twice = pack([path, packed], tmp_path / "two.h5")
    assert len(open_recording(twice).episode_ids()) == 6


def test_single_episode_file_opens_on_its_own(tmp_path):
    path = make_session(tmp_path / "s", [4])
    rec = open_recording(path / "episodes" / "ep_000000.h5")
    assert_episode(rec.load_episode("ep_000000"))


def test_cli_info_and_pack(tmp_path, capsys):
    path = make_session(tmp_path / "s", [0, 1])
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 2 and info["steps"] == 11 and info["returns"]["max"] == 15.0
    assert info["labels_by_reason"] == {"demo": 11} and info["incomplete_episodes"] == 0
    assert info["observation_space"]["type"] == "Box" and info["env_id"] == "Synthetic-v0"
    assert main(["info", str(path)]) == 0
    assert "labels by source" in capsys.readouterr().out
    assert main(["pack", str(path), str(tmp_path / "p.h5"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2
    assert main(["info", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def _cartpole_session(tmp_path):
    import gymnasium as gym

    from ilcore.data import SessionWriter
    from ilcore.types import Actor

    env = gym.make("CartPole-v1")
    path = tmp_path / "cp"
    with SessionWriter(path, env_id="CartPole-v1", observation_space=env.observation_space,
                       action_space=env.action_space) as w:
        for seed in range(3):
            obs, _ = env.reset(seed=seed)
            rec = w.begin_episode(obs, seed=seed)
            for t in range(400):
                action = int(obs[2] > 0)
                rec.label(t, action, source="scripted", reason="demo")
                obs, reward, term, trunc, _ = env.step(action)
                rec.step(action, Actor.SCRIPTED, reward, term, trunc if t < 30 else True, obs)
                if term or trunc or t >= 30:
                    break
            rec.finish()
    return path


def test_minari_export_loads_with_minari_and_imports_back(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "default-root"))
    path = _cartpole_session(tmp_path)
    assert main(["export", "minari", str(path), "--dataset-id", "ilcore/cartpole-test-v0",
                 "--out", str(tmp_path / "mds")]) == 0
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "mds"))
    ds = minari.load_dataset("ilcore/cartpole-test-v0")
    original = list(open_recording(path).episodes())
    assert ds.total_episodes == 3 and ds.total_steps == sum(ep.length for ep in original)
    for ep, mep in zip(original, ds.iterate_episodes()):
        np.testing.assert_array_equal(mep.observations, ep.observations)
        np.testing.assert_array_equal(mep.actions, ep.actions)
        assert bool(mep.terminations[-1]) == ep.terminated and bool(mep.truncations[-1]) == ep.truncated
    assert main(["import", "minari", "ilcore/cartpole-test-v0", "--out", str(tmp_path / "back")]) == 0
    back = open_recording(tmp_path / "back")
    assert back.env_id == "CartPole-v1"
    for ep, ep2 in zip(original, back.episodes()):
        np.testing.assert_array_equal(ep.observations, ep2.observations)
        assert (ep.terminated, ep.truncated) == (ep2.terminated, ep2.truncated)
        assert {lab.reason for lab in ep2.labels} == {"demo"} and len(ep2.effective_labels()) == ep2.length


@pytest.mark.slow
def test_minari_datacollector_dataset_imports(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    pytest.importorskip("jax", reason="minari's DataCollector needs minari[create] (jax)")
    import gymnasium as gym

    from ilcore.data.convert import import_minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "mds"))
    env = minari.DataCollector(gym.make("CartPole-v1"))
    lengths = []
    for seed in range(3):
        env.reset(seed=seed)
        for t in range(200):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                break
        lengths.append(t + 1)
    env.create_dataset("test/collected-v0", algorithm_name="random")
    out = import_minari("test/collected-v0", tmp_path / "imp")
    rec = open_recording(out)
    assert [ep.length for ep in rec.episodes()] == lengths
    assert all(ep.terminated for ep in rec.episodes())
    data = load_transitions(rec, valid_fraction=0.0)
    assert len(data) == sum(lengths)
    # also by folder path
    again = import_minari(os.path.join(tmp_path, "mds", "test", "collected-v0"), tmp_path / "imp2")
    assert open_recording(again).info()["steps"] == sum(lengths)
