"""The torch path: same numbers as numpy, no host reads in device mode, and HeadWatcher."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fadewatch.stats.pipeline as pipeline
from fadewatch.errors import UsageError
from fadewatch.rollouts import RolloutConfig
from fadewatch.stats import HeadWatcher, StatsConfig, compute, finalize, prepare, reduce
from fadewatch.stats.backend import TorchOps

torch.set_num_threads(1)


def step_data(seed: int = 0, n_groups: int = 7, t: int = 11) -> dict:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_groups)
    n = int(sizes.sum())
    uid = np.repeat([f"p{i}" for i in range(n_groups)], sizes)
    rng.shuffle(uid)
    r = (rng.random(n) < 0.5).astype(np.float32)
    adv = rng.normal(size=n).astype(np.float32)
    adv[rng.random(n) < 0.2] = 0
    lens = rng.integers(0, t + 1, n)
    mask = (np.arange(t)[None, :] < lens[:, None]).astype(np.float32)
    return dict(advantages=adv, rewards=r, group_ids=list(uid),
                entropy=(rng.random((n, t)) * 5).astype(np.float32),
                logprobs=-(rng.random((n, t)) * 3).astype(np.float32),
                mask=mask, completions=rng.integers(0, 5, (n, t)))


def as_torch(kw: dict) -> dict:
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}


def assert_same(a, b, rel=1e-5):
    assert set(a.scalars) == set(b.scalars)
    for k, x in a.scalars.items():
        y = b.scalars[k]
        assert (x is None) == (y is None), k
        if x is not None:
            assert math.isclose(x, y, rel_tol=rel, abs_tol=1e-9), (k, x, y)
    assert set(a.histograms) == set(b.histograms)
    for name, ha in a.histograms.items():
        hb = b.histograms[name]
        assert ha.keys() == hb.keys()
        for f, va in ha.items():
            vb = hb[f]
            if isinstance(va, dict):
                va, vb = list(va.values()), list(vb.values())
            if isinstance(va, list) and va and isinstance(va[0], str) or va is None:
                assert va == vb, (name, f)
            else:
                np.testing.assert_allclose(np.asarray(va, dtype=float), np.asarray(vb, dtype=float),
                                           rtol=rel, atol=1e-9, err_msg=f"{name}.{f}")
    assert [g["group"] for g in a.rollouts] == [g["group"] for g in b.rollouts]
    for ga, gb in zip(a.rollouts, b.rollouts):
        assert [x["text"] for x in ga["completions"]] == [x["text"] for x in gb["completions"]]
        for x, y in zip(ga["completions"], gb["completions"]):
            for f in ("reward", "advantage", "entropy"):
                assert x.get(f) == y.get(f) or math.isclose(x[f], y[f], rel_tol=rel), (f, x.get(f), y.get(f))
    assert a.nonfinite == b.nonfinite


@pytest.fixture
def torch_ops(monkeypatch):
    """Run the torch code path on CPU tensors (by default the host path views them as numpy)."""
    monkeypatch.setattr(pipeline, "ops_for", lambda *arrays: TorchOps("cpu"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_and_torch_agree(seed, torch_ops):
    kw = step_data(seed)
    assert_same(compute(**kw), compute(**as_torch(kw)))


def test_cpu_tensors_take_the_host_path():
    kw = step_data(0)
    inputs = prepare(**as_torch(kw))
    assert isinstance(reduce(inputs).raw["adv.sum"], np.floating)
    assert_same(compute(**kw), finalize(reduce(inputs)))


def test_token_level_advantages_and_ragged_rows_agree(torch_ops):
    kw = step_data(3)
    kw["advantages"] = kw["entropy"] - 2.5
    lens = kw["mask"].sum(1).astype(int)
    ragged = dict(kw, entropy=[torch.from_numpy(r[:n]) for r, n in zip(kw["entropy"], lens)])
    del ragged["mask"]
    ragged["logprobs"] = [r[:n].tolist() for r, n in zip(kw["logprobs"], lens)]
    ragged["advantages"] = [torch.from_numpy(r[:n]) for r, n in zip(kw["advantages"], lens)]
    ragged["completions"] = [r[:n].tolist() for r, n in zip(kw["completions"], lens)]
    kw["completions"] = np.where(kw["mask"] > 0, kw["completions"], -1)
    assert_same(compute(**kw), compute(**ragged))


@pytest.fixture
def device_mode(monkeypatch):
    """The CUDA code path on CPU tensors, with every host read of tensor data made an error."""
    def ops_for(*arrays):
        ops = TorchOps("cpu")
        ops.sync_free = True
        return ops

    monkeypatch.setattr(pipeline, "ops_for", ops_for)
    guarded = []

    def forbid(name):
        def boom(*a, **k):
            raise AssertionError(f"host read in reduce(): {name}")
        return boom

    def guard():
        for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "nonzero"):
            monkeypatch.setattr(torch.Tensor, name, forbid(name))
        for name in ("nonzero", "unique", "bincount", "masked_select", "unique_consecutive"):
            monkeypatch.setattr(torch, name, forbid(name))
        getitem = torch.Tensor.__getitem__

        def checked(self, idx):
            parts = idx if isinstance(idx, tuple) else (idx,)
            if any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts):
                raise AssertionError("boolean indexing in reduce()")
            return getitem(self, idx)
        monkeypatch.setattr(torch.Tensor, "__getitem__", checked)
        guarded.append(True)

    return guard, monkeypatch


@pytest.mark.parametrize("seed", [0, 4])
def test_device_mode_agrees_and_never_reads_back(device_mode, seed):
    guard, monkeypatch = device_mode
    kw = step_data(seed)
    want = compute(**kw)
    inputs = prepare(**as_torch(kw))
    guard()
    red = reduce(inputs)
    monkeypatch.undo()
    assert_same(want, finalize(red))


@pytest.mark.parametrize("mode", ["host", "torch"])
def test_half_precision_inputs(mode, monkeypatch):
    if mode == "torch":
        monkeypatch.setattr(pipeline, "ops_for", lambda *arrays: TorchOps("cpu"))
    kw = step_data(5)
    half = as_torch(kw)
    half["entropy"] = half["entropy"].to(torch.bfloat16)
    half["advantages"] = half["advantages"].to(torch.float16)
    s = compute(**half).scalars
    assert s["entropy/mean"] == pytest.approx(compute(**kw).scalars["entropy/mean"], rel=1e-2)


def test_mixed_numpy_lists_and_tensors(torch_ops):
    kw = step_data(6)
    mixed = dict(kw, advantages=torch.from_numpy(kw["advantages"]), rewards=kw["rewards"].tolist(),
                 group_ids=torch.from_numpy(np.unique(kw["group_ids"], return_inverse=True)[1]))
    a, b = compute(**kw), compute(**mixed)
    for k in ("sign/balance", "difficulty/peak", "pass@2", "diversity/distinct_2"):
        assert a.scalars[k] == pytest.approx(b.scalars[k], rel=1e-6)


def test_to_host_async_is_a_noop_on_cpu(torch_ops):
    red = reduce(prepare(**as_torch(step_data(0))))
    assert red.to_host_async() is red and red._pending is None


# ---------------------------------------------------------------- HeadWatcher

def low_rank_update(weight: torch.Tensor, scales=(3.0, 1.0, 0.5), seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(weight.shape[0], len(scales), generator=gen)
    v = torch.randn(weight.shape[1], len(scales), generator=gen)
    with torch.no_grad():
        weight += (u * torch.tensor(scales)) @ v.t() * 0.01


def test_head_watcher_matches_svd():
    head = torch.nn.Linear(48, 300, bias=False)
    watcher = HeadWatcher(head, every=5, block_elems=48 * 64)  # several row blocks
    assert watcher.maybe_measure(10) is None  # the snapshot
    low_rank_update(head.weight)
    assert watcher.maybe_measure(12) is None
    m = watcher.maybe_measure(15)
    assert isinstance(m["geometry/head_delta_norm"], torch.Tensor)
    got = HeadWatcher.finalize_now(m)
    s = np.linalg.svd((head.weight.detach() - watcher.w0).double().numpy(), compute_uv=False)
    assert got["geometry/head_delta_norm"] == pytest.approx(math.sqrt((s**2).sum()), rel=1e-5)
    assert got["geometry/rank1_frac"] == pytest.approx(s[0] ** 2 / (s**2).sum(), rel=1e-4)
    assert watcher.maybe_measure(19) is None and watcher.maybe_measure(20) is not None


def test_head_watcher_through_the_pipeline():
    emb = torch.nn.Embedding(100, 16)
    watcher = HeadWatcher(emb, every=1)
    watcher.maybe_measure(0)
    m = watcher.maybe_measure(1)
    s = compute(advantages=[1.0, -1.0], scalars=m)
    assert s.scalars["geometry/head_delta_norm"] == 0.0
    assert s.scalars["geometry/rank1_frac"] is None and s.nonfinite == []  # no update yet
    low_rank_update(emb.weight, scales=(1.0,))
    s = finalize(reduce(prepare(scalars=watcher.maybe_measure(2))).to_host_async())
    assert s.scalars["geometry/rank1_frac"] == pytest.approx(1.0, rel=1e-5)


def test_head_watcher_accepts_modules_and_tensors():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(4, 3))

    for head in (Model(), torch.nn.Parameter(torch.zeros(4, 3)), torch.zeros(4, 3)):
        assert HeadWatcher(head).weight.shape == (4, 3)
    with pytest.raises(UsageError, match="output head"):
        HeadWatcher(object())
    with pytest.raises(UsageError, match="2-D"):
        HeadWatcher(torch.zeros(5))
    with pytest.raises(UsageError, match="every"):
        HeadWatcher(torch.zeros(2, 2), every=0)


def test_config_reaches_the_torch_path(torch_ops):
    kw = as_torch(step_data(0))
    s = compute(**kw, config=StatsConfig(pass_at_k=(1,)), rollouts=RolloutConfig(groups=1))
    assert [k for k in s.scalars if k.startswith("pass@")] == ["pass@1"] and len(s.rollouts) == 1
