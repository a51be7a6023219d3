"""Groups and the group-aware split, on synthetic clips (no clustering needed)."""

import numpy as np
import pytest

from wakeprep.split import (
    Clip,
    SplitError,
    assign_groups,
    cap_train_groups,
    check_no_leak,
    leakage_audit,
    nearest,
    split_groups,
)

RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _clips(n_groups=60, per=(3, 12), labels=("positive", "negative"), seed=0, corpus="c"):
    rng = np.random.default_rng(seed)
    clips = []
    for g in range(n_groups):
        for i in range(int(rng.integers(*per))):
            label = labels[int(rng.integers(len(labels)))]
            clips.append(Clip(f"{corpus}/g{g:03d}/{i:03d}", corpus, label, 1.5, speaker=f"s{g:03d}"))
    return clips


def test_no_group_in_two_splits_and_ratios_within_tolerance():
    clips = _clips(200)
    assign_groups(clips, {}, None)
    split_groups(clips, RATIOS, seed=1)
    assert check_no_leak(clips) == []
    for label in ("positive", "negative"):
        mine = [c for c in clips if c.label == label]
        for s, r in RATIOS.items():
            frac = sum(c.split == s for c in mine) / len(mine)
            assert abs(frac - r) < 0.03, (label, s, frac)


def test_same_seed_same_split_and_seed_matters():
    a, b, c = _clips(100), _clips(100), _clips(100)
    for x in (a, b, c):
        assign_groups(x, {}, None)
    split_groups(a, RATIOS, seed=5)
    split_groups(b, RATIOS, seed=5)
    split_groups(c, RATIOS, seed=6)
    assert [x.split for x in a] == [x.split for x in b]
    assert [x.split for x in a] != [x.split for x in c]
    # input order does not matter either
    d = _clips(100)
    assign_groups(d, {}, None)
    split_groups(list(reversed(d)), RATIOS, seed=5)
    assert [x.split for x in a] == [x.split for x in d]


def test_fixed_splits_honoured_and_pull_their_groups():
    clips = _clips(50)
    ambient = [Clip(f"amb/{i}", "amb", "background", 30.0, fixed_split="test") for i in range(5)]
    # one speaker of the normal corpus also appears in a corpus fixed to validation
    shared = Clip("val/x", "val", "positive", 1.0, speaker="s007", fixed_split="validation")
    allc = clips + ambient + [shared]
    assign_groups(allc, {}, None)
    warnings = split_groups(allc, RATIOS, seed=0)
    assert all(c.split == "test" for c in ambient)
    assert all(c.split == "validation" for c in allc if c.speaker == "s007")
    assert any("s007" in w for w in warnings)
    assert check_no_leak(allc) == []


def test_conflicting_fixed_splits_fail_clearly():
    a = Clip("a/1", "a", "positive", 1.0, speaker="p", fixed_split="test")
    b = Clip("b/1", "b", "positive", 1.0, speaker="p", fixed_split="validation")
    assign_groups([a, b], {}, None)
    with pytest.raises(SplitError, match="spk:p"):
        split_groups([a, b], RATIOS, seed=0)


def test_single_speaker_corpus_warns():
    clips = [Clip(f"solo/{i}", "solo", "positive", 1.0, speaker="only") for i in range(10)] + _clips(20)
    assign_groups(clips, {}, None)
    warnings = split_groups(clips, RATIOS, seed=0)
    assert any("corpus 'solo' has a single speaker group" in w for w in warnings)
    assert len({c.split for c in clips if c.corpus == "solo"}) == 1


def test_groups_from_clusters_and_known_ids():
    clips = [
        Clip("a/1", "a", "positive", 1, speaker="alice"),
        Clip("b/1", "b", "positive", 1),  # same cluster as alice -> alice's group
        Clip("b/2", "b", "positive", 1),  # its own cluster
        Clip("n/1", "n", "background", 1),  # no embedding -> own group
    ]
    emb_index = {"a/1": 0, "b/1": 1, "b/2": 2}
    assign_groups(clips, emb_index, np.array([4, 4, 9]))
    assert [c.group for c in clips] == ["spk:alice", "spk:alice", "clu:0000009", "clip:n/1"]


@pytest.mark.parametrize("strategy", ["random", "centroid", "spread"])
def test_cap_per_group(strategy):
    rng = np.random.default_rng(0)
    clips = [Clip(f"c/{i:03d}", "c", "positive", 1, speaker="big") for i in range(40)]
    clips += [Clip(f"d/{i:03d}", "d", "positive", 1, speaker=f"x{i}") for i in range(20)]
    emb = rng.standard_normal((60, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    idx = {c.clip_id: i for i, c in enumerate(clips)}
    assign_groups(clips, idx, None)
    for c in clips:
        c.split = "train"
    dropped = cap_train_groups(clips, 5, strategy, 3, idx, emb)
    assert dropped == 35
    assert sum(c.use for c in clips if c.speaker == "big") == 5
    assert all(c.use for c in clips if c.speaker != "big")
    again = [Clip(c.clip_id, c.corpus, c.label, 1, speaker=c.speaker) for c in clips]
    assign_groups(again, idx, None)
    for c in again:
        c.split = "train"
    cap_train_groups(again, 5, strategy, 3, idx, emb)
    assert [c.use for c in again] == [c.use for c in clips]
    if strategy == "centroid":
        big = [c for c in clips if c.speaker == "big"]
        x = emb[[idx[c.clip_id] for c in big]]
        sim = x @ x.mean(axis=0)
        kept = {c.clip_id for c in big if c.use}
        assert kept == {big[i].clip_id for i in np.argsort(-sim)[:5]}


def test_nearest_exact_and_approximate_agree():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((3000, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    q = base[:200] + 0.01 * rng.standard_normal((200, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    s1, i1 = nearest(q, base)
    s2, i2 = nearest(q, base, exact_limit=0)
    np.testing.assert_array_equal(i1, np.arange(200))
    assert np.mean(i2 == i1) > 0.95
    np.testing.assert_allclose(s1[i2 == i1], s2[i2 == i1], atol=1e-5)


def test_leakage_audit_flags_duplicates():
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((10, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    emb[9] = emb[0]  # a test clip identical to a training clip
    clips = [Clip(f"c/{i}", "c", "positive", 1, group=f"g{i}", split="train") for i in range(8)]
    clips += [Clip("c/8", "c", "positive", 1, group="g8", split="validation"),
              Clip("c/9", "c", "positive", 1, group="g9", split="test")]
    audit = leakage_audit(clips, {c.clip_id: i for i, c in enumerate(clips)}, emb, 0.9)
    assert audit["checked"] == 2
    assert audit["per_split_label"]["test/positive"]["above"] == 1
    assert audit["worst_pairs"][0]["clip"] == "c/9" and audit["worst_pairs"][0]["nearest_train_clip"] == "c/0"


def test_duplicate_content_shares_a_group_and_is_used_once():
    from wakeprep.split import merge_duplicate_content

    clips = [Clip(f"bg/{i}", "bg", "background", 2.0, sha256=f"h{i}") for i in range(30)]
    clips.append(Clip("bg/copy_of_3", "bg", "background", 2.0, sha256="h3"))
    clips.append(Clip("other/copy_of_3", "other", "background", 2.0, sha256="h3"))
    assign_groups(clips, {}, None)
    dups = merge_duplicate_content(clips)
    assert dups == [{"clip": "bg/copy_of_3", "same_as": "bg/3"}, {"clip": "other/copy_of_3", "same_as": "bg/3"}]
    split_groups(clips, RATIOS, seed=0)
    copies = [c for c in clips if c.sha256 == "h3"]
    assert len({c.group for c in copies}) == 1 and len({c.split for c in copies}) == 1
    assert [c.use for c in copies] == [1, 0, 0]
    assert check_no_leak(clips) == []
