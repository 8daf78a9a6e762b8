"""Every refusal is one clear sentence."""

import json

import h5py
import numpy as np
import pytest
from gymnasium import spaces

from ilcore.data import SessionWriter, open_recording, pack
from ilcore.errors import FormatError, SpaceMismatchError, UserError
from tests.support.recordings import ACT_SPACE, ENV_ID, OBS_SPACE, make_session, make_writer


def one_sentence(exc_info):
    msg = str(exc_info.value)
    assert msg.endswith(".") and "\n" not in msg and ". " not in msg, msg
    return msg


def test_truncated_episode_file(tmp_path):
    path = make_session(tmp_path / "s", [0])
    f = path / "episodes" / "ep_000000.h5"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(FormatError) as e:
        list(open_recording(path).episodes())
    assert "not a readable HDF5 file" in one_sentence(e)


def test_random_bytes_and_foreign_hdf5(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(FormatError) as e:
        open_recording(junk)
    assert "not a readable HDF5 file" in one_sentence(e)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(FormatError) as e:
        open_recording(foreign)
    assert "not an ilcore recording" in one_sentence(e)
    path = make_session(tmp_path / "s", [0])
    (path / "episodes" / "ep_000001.h5").write_bytes(foreign.read_bytes())
    with pytest.raises(FormatError) as e:
        list(open_recording(path).episodes())
    assert "ep_000001.h5 is an HDF5 file but not an ilcore recording" in one_sentence(e)


def test_newer_schema(tmp_path):
    path = make_session(tmp_path / "s", [0])
    with h5py.File(path / "episodes" / "ep_000000.h5", "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(FormatError) as e:
        list(open_recording(path).episodes())
    assert "schema version 99, newer than" in one_sentence(e)
    meta = json.loads((path / "session.json").read_text())
    meta["schema_version"] = 7
    (path / "session.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError) as e:
        open_recording(path)
    assert "schema version 7" in one_sentence(e)


def test_folder_that_is_not_a_session(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("hi")
    with pytest.raises(FormatError) as e:
        open_recording(tmp_path / "other")
    assert "is not a recording session" in one_sentence(e)
    with pytest.raises(FormatError) as e:
        make_writer(tmp_path / "other")
    assert "not a recording session" in one_sentence(e)
    with pytest.raises(FormatError) as e:
        open_recording(tmp_path / "missing")
    assert "does not exist" in one_sentence(e)


def test_wrong_spaces_and_env(tmp_path):
    path = make_session(tmp_path / "s", [0])
    with pytest.raises(SpaceMismatchError) as e:
        open_recording(path, env_id=ENV_ID, observation_space=spaces.Box(-1, 1, (4,)), action_space=ACT_SPACE)
    assert "observation space" in one_sentence(e)
    with pytest.raises(SpaceMismatchError) as e:
        open_recording(path, action_space=spaces.Discrete(4))
    assert "action space" in one_sentence(e)
    with pytest.raises(SpaceMismatchError) as e:
        open_recording(path, env_id="CartPole-v1")
    assert "was recorded on Synthetic-v0, not CartPole-v1" in one_sentence(e)
    open_recording(path, env_id=ENV_ID, observation_space=OBS_SPACE, action_space=ACT_SPACE)
    with pytest.raises(SpaceMismatchError) as e:
        SessionWriter(path, env_id=ENV_ID, observation_space=OBS_SPACE, action_space=spaces.Discrete(5), resume=True)
    one_sentence(e)
    other = tmp_path / "o"
    SessionWriter(other, env_id=ENV_ID, observation_space=spaces.Box(0, 1, (2,)), action_space=ACT_SPACE).close()
    with pytest.raises(SpaceMismatchError) as e:
        open_recording([path, other])
    assert "different observation spaces" in one_sentence(e)


def test_data_that_does_not_fit_is_refused_and_nothing_written(tmp_path):
    with make_writer(tmp_path / "s") as w:
        rec = w.begin_episode(np.zeros(3, np.float32))
        rec.step(7, 0, 0.0, False, False, np.zeros(3, np.float32))
        with pytest.raises(SpaceMismatchError) as e:
            rec.finish()
        one_sentence(e)
        rec.discard()
    assert open_recording(tmp_path / "s").episode_ids() == []


def test_existing_session_locked_session_and_existing_pack(tmp_path):
    path = make_session(tmp_path / "s", [0])
    with pytest.raises(UserError) as e:
        make_writer(path)
    assert "already exists" in one_sentence(e)
    with make_writer(path, resume=True):
        with pytest.raises(UserError) as e:
            make_writer(path, resume=True)
        assert "already being written by process" in one_sentence(e)
    pack(path, tmp_path / "p.h5")
    before = (tmp_path / "p.h5").read_bytes()
    with pytest.raises(UserError) as e:
        pack(path, tmp_path / "p.h5")
    one_sentence(e)
    assert (tmp_path / "p.h5").read_bytes() == before
