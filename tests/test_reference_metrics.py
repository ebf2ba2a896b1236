"""Every statistic against an independent numpy reference (tests/support/reference.py), on
random and edge inputs: all-success and all-fail groups, G = 1, ragged unsorted groups,
masks with empty rows, text and token-id completions, bf16 and fp16 tensors, NaN and huge
values.

Exact statistics must agree to float rounding of the inputs' precision; binned quantiles
must lie within the slot that holds their rank. ``python -m tests.test_reference_metrics``
prints the largest error seen per statistic.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pytest

from fadewatch import advantages as estimators
from fadewatch.stats import HeadWatcher, StatsConfig, compute
from tests.support import reference as ref

torch = pytest.importorskip("torch")

SPEC = {"advantages": (-4.0, 4.0, 80), "advantages/token": (-4.0, 4.0, 80), "entropy": (0.0, 8.0, 64)}


@dataclass
class Case:
    name: str
    kw: dict
    tol: float = 1e-9                     # relative (absolute below 1) error allowed
    config: StatsConfig = field(default_factory=StatsConfig)


def _host(x):
    if isinstance(x, torch.Tensor):
        return x.double().numpy() if x.is_floating_point() else x.numpy()
    return x


def _rows(x, mask):
    """Per rollout, its real tokens as python floats (or ints for ids)."""
    if isinstance(x, list):
        return [[v.item() if hasattr(v, "item") else v for v in _host(r)] if len(r) else [] for r in x]
    x = np.asarray(_host(x))
    real = np.ones(x.shape, dtype=bool) if mask is None else np.asarray(_host(mask)) != 0
    return [x[i][real[i]].tolist() for i in range(x.shape[0])]


def _random_case(seed: int, n_groups: int = 16, g: int = 8, t: int = 24) -> dict:
    rng = np.random.default_rng(seed)
    p = rng.random(n_groups)
    r = (rng.random((n_groups, g)) < p[:, None]).astype(np.float64).reshape(-1)
    a = estimators.grpo(r, g)
    lens = rng.integers(0, t + 1, n_groups * g)
    mask = (np.arange(t)[None, :] < lens[:, None]).astype(np.float32)
    return dict(advantages=a, rewards=r, group_ids=g, entropy=rng.random((n_groups * g, t)) * 6,
                logprobs=-rng.random((n_groups * g, t)) * 4, mask=mask,
                completions=rng.integers(0, 6, (n_groups * g, t)))


def cases() -> list[Case]:
    rng = np.random.default_rng(11)
    out = [Case("random", _random_case(0)), Case("random-2", _random_case(1, 40, 4, 9))]

    # All-success and all-fail groups among mixed ones; text completions with repeats.
    r = np.array([1.0] * 6 + [0.0] * 6 + [1, 0, 1, 1, 0, 0] + [1, 1, 1, 1, 1, 0], dtype=float)
    words = ["a b c", "a b c", "b c d e", "x", "", "a a a a"]
    out.append(Case("all-success/all-fail", dict(
        advantages=estimators.dr_grpo(r, 6), rewards=r, group_ids=6,
        completions=[words[i % 6] for i in range(24)])))

    # G = 1: every group a single rollout.
    r = rng.random(10)
    out.append(Case("G=1", dict(advantages=estimators.rloo(r, 1), rewards=r, group_ids=list(range(10)),
                                completions=[f"w{i} w{i % 3}" for i in range(10)])))

    # Ragged, unsorted string groups of sizes 1..6; continuous rewards; ragged token inputs.
    sizes = rng.integers(1, 7, 12)
    ids = np.repeat([f"prompt-{i}" for i in range(12)], sizes)
    rng.shuffle(ids)
    n = len(ids)
    lens = rng.integers(0, 9, n)
    out.append(Case("ragged groups, token-level advantages", dict(
        advantages=[rng.normal(size=k) * 2 for k in lens], rewards=rng.random(n), group_ids=list(ids),
        entropy=[rng.random(k) * 5 for k in lens], logprobs=[-rng.random(k) * 3 for k in lens],
        completions=[rng.integers(0, 4, k).tolist() for k in lens])))

    # Masks with empty rows, float32 arrays.
    d = _random_case(2, 8, 4, 16)
    d["mask"][::3] = 0.0
    d = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
         for k, v in d.items()}
    out.append(Case("empty mask rows, float32", d, tol=1e-6))

    for dtype in (torch.bfloat16, torch.float16):
        d = _random_case(3, 12, 8, 20)
        t = {k: torch.from_numpy(np.asarray(v)) for k, v in d.items() if k != "group_ids"}
        t = {k: v.to(dtype) if v.is_floating_point() else v for k, v in t.items()}
        out.append(Case(str(dtype).replace("torch.", ""), dict(t, group_ids=8), tol=1e-5))

    # NaN and Inf in every input, heavy-tailed advantages reaching past the bins.
    d = _random_case(4, 10, 6, 12)
    d["advantages"] = rng.standard_t(1.5, 60) * 3
    d["advantages"][[3, 17]] = [np.nan, np.inf]
    d["rewards"][[5, 40, 41]] = np.nan
    d["entropy"][2, :4] = np.nan
    d["logprobs"][7, 1] = -np.inf
    d["entropy"][::5] *= 2.5  # some tokens above the entropy bins' hi of 8
    # Few exact extremes kept: quantiles come from the bins and the tails.
    out.append(Case("NaN/Inf, heavy tails", d, config=StatsConfig(tail_values=8)))

    d = _random_case(5, 8, 8, 10)
    d["advantages"] = d["advantages"] * 1e200
    out.append(Case("advantages of 1e200", d))
    return out


def reference_of(case: Case) -> dict:
    kw, cfg = case.kw, case.config
    mask = kw.get("mask")
    want: dict = {}
    adv_rollout = adv_rows = None
    if kw.get("advantages") is not None:
        a = kw["advantages"]
        if isinstance(a, list) or np.asarray(_host(a)).ndim == 2:
            adv_rows = _rows(a, mask)
            adv_rollout = ref.row_means(adv_rows)
            want.update(ref.advantage_stats(adv_rollout, cfg.zero_tol))
            want["advantages/nonfinite"] = sum(not math.isfinite(x) for r in adv_rows for x in r)
        else:
            adv_rollout = np.asarray(_host(a), dtype=np.float64).tolist()
            want.update(ref.advantage_stats(adv_rollout, cfg.zero_tol))
        want["advantages values"] = [x for x in adv_rollout if math.isfinite(x)]
    if kw.get("rewards") is not None:
        r = np.asarray(_host(kw["rewards"]), dtype=np.float64).tolist()
        want.update(ref.reward_stats(r, cfg.success_threshold))
        n = len(r)
        gid = kw["group_ids"]
        groups = [i // gid for i in range(n)] if isinstance(gid, int) else list(gid)
        want.update(ref.group_stats(r, adv_rollout, groups, cfg.success_threshold, cfg.zero_tol))
        if kw.get("completions") is not None:
            c = kw["completions"]
            comps = list(c) if isinstance(c, list) and (not c or isinstance(c[0], (str, list))) else _rows(c, mask)
            want.update(ref.diversity_stats(comps, groups, cfg.jaccard_n))
    if kw.get("entropy") is not None or kw.get("logprobs") is not None:
        ent = _rows(kw["entropy"], mask) if kw.get("entropy") is not None else None
        lp = _rows(kw["logprobs"], mask) if kw.get("logprobs") is not None else None
        want.update(ref.token_stats(ent, lp, None if adv_rows is not None else adv_rollout, adv_rows))
    if adv_rows is not None:
        want["advantages/token values"] = [x for r in adv_rows for x in r if math.isfinite(x)]
    return want


# Statistics that are sums of the advantages (or rewards): their rounding error is relative
# to the size of the values, not of the result (a mean near 0 of values near 1e200).
LINEAR = {"adv/mean": "adv", "adv/std": "adv", "sign/m_pos": "adv", "sign/m_neg": "adv",
          "reward/mean": "rew", "reward/std": "rew", "entropy/cov_logp_adv": "cov"}


def _scaled_error(got: float, want: float, scale: float = 1.0) -> float:
    return abs(got - want) / max(abs(want), 1.0, scale)


def _slot_error(got: float, values: list, name: str, q: float) -> float:
    """|got - exact| in units of the width of the slot(s) holding the rank (<= 1 passes)."""
    lo, hi, bins = SPEC[name]
    xs = sorted(values)
    exact = ref.linear_quantile(xs, q)
    edges = np.linspace(lo, hi, bins + 1)
    rank = q * (len(xs) - 1)
    width = 0.0
    for k in {math.floor(rank), math.ceil(rank)}:
        i = int(np.searchsorted(edges, xs[k], side="right"))
        left = xs[0] if i == 0 else edges[i - 1]
        right = xs[-1] if i == len(edges) else edges[i]
        width = max(width, min(right, xs[-1]) - max(left, xs[0]))
    err = abs(got - exact)
    return 0.0 if err <= 1e-12 else err / width if width > 0 else math.inf


def compare(case: Case) -> dict[str, float]:
    """Error per statistic: scaled error for exact ones, slot fraction for binned quantiles."""
    got = compute(**case.kw, config=case.config)
    want = reference_of(case)
    errors: dict[str, float] = {}
    big = {"adv": max(map(abs, want.get("advantages values") or [0.0])),
           "rew": max(abs(want.get("reward/min") or 0.0), abs(want.get("reward/max") or 0.0))}
    big["cov"] = big["adv"] * 100.0  # |log pi| of the cases stays below 100
    scalars = got.scalars
    for name, w in want.items():
        if name.startswith("advantages@q"):
            g = got.histograms["advantages"]["quantiles"][name[len("advantages@q"):]]
        elif "[" in name:
            hist, b = name[:-1].split("[")
            h = got.histograms.get(hist)
            g = h["counts"][int(b)] if h is not None else 0.0
        elif name == "entropy/values":
            h = got.histograms["entropy"]
            hist = ref.uniform_histogram(w, *SPEC["entropy"])
            errors["entropy histogram counts"] = max(abs(a - b) for a, b in zip(h["counts"], hist["counts"]))
            for key, v in h["quantiles"].items():
                errors["entropy quantiles (slots)"] = max(errors.get("entropy quantiles (slots)", 0.0),
                                                          _slot_error(v, w, "entropy", float(key)))
            continue
        elif name == "advantages values":
            continue
        elif name == "advantages/token values":
            h = got.histograms["advantages/token"]
            for key, v in h["quantiles"].items():
                errors["advantages/token quantiles (slots)"] = max(
                    errors.get("advantages/token quantiles (slots)", 0.0),
                    _slot_error(v, w, "advantages/token", float(key)))
            continue
        else:
            assert name in scalars, f"{case.name}: {name} missing"
            g = scalars[name]
        assert (g is None) == (w is None), f"{case.name}: {name} got {g}, want {w}"
        if w is not None:
            errors[name] = _scaled_error(g, w, big.get(LINEAR.get(name), 1.0))
    values = want.get("advantages values")
    if values is not None:
        h, hist = got.histograms["advantages"], ref.uniform_histogram(values, *SPEC["advantages"])
        errors["advantages histogram counts"] = max(
            [abs(a - b) for a, b in zip(h["counts"], hist["counts"])]
            + [abs(h["underflow"] - hist["underflow"]), abs(h["overflow"] - hist["overflow"])])
    return errors


CASES = cases()
ERRORS: dict[str, float] = defaultdict(float)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_statistic_matches_the_reference(case):
    errors = compare(case)
    assert len(errors) > 20
    for name, err in errors.items():
        ERRORS[name] = max(ERRORS[name], err)
        if "(slots)" in name:
            assert err <= 1.0 + 1e-9, (case.name, name, err)
        elif "counts" in name:
            assert err == 0, (case.name, name, err)
        else:
            assert err <= case.tol, (case.name, name, err)


def _spectra():
    rng = np.random.default_rng(5)
    for scales in [(3.0, 1.0, 0.5), (1.0, 0.999, 0.998, 0.5), (1.0,) * 20, tuple(np.linspace(1, 0.01, 40)), (1.0,)]:
        u, _ = np.linalg.qr(rng.normal(size=(200, len(scales))))
        v, _ = np.linalg.qr(rng.normal(size=(40, len(scales))))
        yield (u * np.array(scales)) @ v.T * 0.01


@pytest.mark.parametrize("delta", list(_spectra()), ids=lambda d: f"rank{np.linalg.matrix_rank(d)}")
def test_rank1_fraction_matches_the_svd(delta):
    head = torch.nn.Linear(40, 200, bias=False, dtype=torch.float64)
    watcher = HeadWatcher(head, every=1)
    watcher.maybe_measure(0)
    with torch.no_grad():
        head.weight += torch.from_numpy(delta)
    got = HeadWatcher.finalize_now(watcher.maybe_measure(1))["geometry/rank1_frac"]
    want = ref.rank1_fraction(head.weight.detach().numpy() - watcher.w0.numpy())
    err = abs(got - want)
    ERRORS["geometry/rank1_frac"] = max(ERRORS["geometry/rank1_frac"], err)
    assert err <= 1e-9


def main() -> None:
    for case in CASES:
        for name, err in compare(case).items():
            ERRORS[name] = max(ERRORS[name], err)
    for delta in _spectra():
        test_rank1_fraction_matches_the_svd(delta)
    rows: dict[str, float] = defaultdict(float)
    for name, err in ERRORS.items():
        if name.startswith("advantages@q"):
            name = "advantages quantiles (exact)"
        elif "[" in name:
            name = name.split("[")[0] + " bins"
        rows[name] = max(rows[name], err)
    print(f"Largest error per statistic over {len(CASES)} cases and {len(list(_spectra()))} head updates:\n")
    print("| statistic | largest error |")
    print("|---|---|")
    for name in sorted(rows):
        print(f"| `{name}` | {rows[name]:.1e} |")


if __name__ == "__main__":
    main()
