import numpy as np
import pytest

from ilcore.data import effective_label_rows, load_transitions, open_recording
from ilcore.errors import FormatError, UserError
from ilcore.types import Label
from tests.support.recordings import label_at, make_session, make_writer


def test_effective_rows_latest_wins_and_retract_pops():
    steps = np.array([0, 1, 1, 2])
    s, r = effective_label_rows(steps, 10, [])
    assert s.tolist() == [0, 1, 2] and r.tolist() == [0, 2, 3]
    records = [
        {"op": "label", "step": 2}, {"op": "retract", "step": 1}, {"op": "retract", "step": 2},
        {"op": "retract", "step": 2}, {"op": "retract", "step": 2}, {"op": "label", "step": 5},
    ]
    s, r = effective_label_rows(steps, 10, records)
    # step 1: file row 2 retracted -> row 1; step 2: overlay and file label retracted, third retract is a no-op
    assert s.tolist() == [0, 1, 5] and r.tolist() == [0, 1, -2]
    s, r = effective_label_rows(steps, 2, records)
    assert s.tolist() == [0, 1]


def test_overlay_latest_wins_retract_restores_and_older_stay_for_audit(tmp_path):
    path = make_session(tmp_path / "s", [0, 1])
    with make_writer(path, resume=True) as w:
        w.add_label(Label("ep_000001", 2, 0, source="human", reason="review", latency_ms=800.0))
        w.add_label(Label("ep_000001", 2, 1, source="human", reason="review"))
        w.add_label(Label("ep_000001", 3, 2, source="idm", reason="inferred"))
        w.retract_label("ep_000001", 3)
        with pytest.raises(UserError, match="no finished episode"):
            w.add_label(Label("ep_000009", 0, 0, source="human", reason="review"))
        with pytest.raises(UserError, match="outside episode"):
            w.add_label(Label("ep_000001", 999, 0, source="human", reason="review"))
    ep = open_recording(path).load_episode("ep_000001")
    eff = ep.effective_labels()
    assert int(eff[2].action) == 1 and eff[2].source == "human"
    assert int(eff[3].action) == label_at(1, 3) and eff[3].source == "scripted"  # retract restored the demo label
    assert [int(lab.action) for lab in ep.labels if lab.step == 2] == [label_at(1, 2), 0, 1]  # audit trail
    data = load_transitions(path, valid_fraction=0.0)
    row = np.flatnonzero((data.episode == data.episode_ids.index("ep_000001")) & (data.step == 2))[0]
    assert data.actions[row] == 1 and data.source[row] == "human" and data.reason[row] == "review"
    row3 = np.flatnonzero((data.episode == 1) & (data.step == 3))[0]
    assert data.actions[row3] == label_at(1, 3) and data.reason[row3] == "demo"
    info = open_recording(path).info()
    assert info["labels_by_source"] == {"human": 1, "scripted": info["steps"] - 1}


def test_torn_last_line_is_ignored_and_cut_before_appending(tmp_path):
    path = make_session(tmp_path / "s", [0])
    with make_writer(path, resume=True) as w:
        w.add_label(Label("ep_000000", 1, 2, source="human", reason="review"))
    overlay = path / "labels.jsonl"
    with open(overlay, "ab") as fh:
        fh.write(b'{"op": "label", "episode": "ep_000000", "step": 2, "act')  # a crash mid-write
    assert int(open_recording(path).load_episode("ep_000000").effective_labels()[1].action) == 2
    with make_writer(path, resume=True) as w:
        w.add_label(Label("ep_000000", 4, 1, source="human", reason="review"))
    lines = overlay.read_text().splitlines()
    assert len(lines) == 2 and "act\"" not in lines[-1]
    eff = open_recording(path).load_episode("ep_000000").effective_labels()
    assert int(eff[4].action) == 1 and int(eff[2].action) == label_at(0, 2)


def test_corrupt_middle_line_is_refused(tmp_path):
    path = make_session(tmp_path / "s", [0])
    (path / "labels.jsonl").write_text('garbage\n{"op": "retract", "episode": "ep_000000", "step": 1}\n')
    with pytest.raises(FormatError, match="corrupt record on line 1"):
        open_recording(path)


def test_discarded_episode_is_kept_but_not_loaded(tmp_path):
    path = make_session(tmp_path / "s", [0, 1, 2])
    with make_writer(path, resume=True) as w:
        w.discard_episode("ep_000001")
        assert w.episode_ids() == ["ep_000000", "ep_000002"]
        rec = w.begin_episode(np.zeros(3, np.float32))
        assert rec.episode_id == "ep_000003"  # ids are never reused
        rec.observe(np.zeros(3, np.float32))  # one step, so closing keeps it (as incomplete)
    assert (path / "discarded" / "ep_000001.h5").exists()
    assert open_recording(path).episode_ids() == ["ep_000000", "ep_000002", "ep_000003"]


def test_load_transitions_action_mode_and_episode_split(tmp_path):
    path = make_session(tmp_path / "s", range(10))
    data = load_transitions(path, labels="action", valid_fraction=0.2, seed=3)
    assert len(data) == sum(5 + s % 23 for s in range(10))
    assert set(data.source) == {"scripted"} and set(data.reason) == {"executed"}
    assert data.weights.dtype == np.float32 and np.all(data.weights == 1.0)
    valid_eps = set(data.episode[data.valid_mask].tolist())
    assert len(valid_eps) == 2 and not valid_eps & set(data.episode[data.train_mask].tolist())
    assert np.array_equal(data.train_mask, ~data.valid_mask)
    np.testing.assert_array_equal(data.next_obs[:, 1], data.step + 1)
    assert data.terminal.sum() == 10
    assert len(data.train()) + len(data.valid()) == len(data)
