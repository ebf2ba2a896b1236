"""The entropy forecast: where a fit through the newest steps says entropy is heading.

A least-squares line through the last `window` entropies says whether entropy is falling
at all (its slope's t statistic); a quadratic through the same points reads the entropy
now and its slope now. The cautious reading of the two (the higher entropy, the shallower
slope) is followed to the collapse level, so a fall that is levelling off is not
extrapolated at its average pace, and the quadratic's noisy end cannot hasten a warning.
The interval is the slope's: slope x (1 +- z / |t|), giving the earliest and the latest
step the level is met at that uncertainty (no latest when the shallow edge does not fall).

The window's regression sums are kept up to date in O(1) per step in the detector's
memory, so the forecast costs the same whatever the window.
"""

from __future__ import annotations

import math

__all__ = ["trend_push", "trend_fit", "Projection"]


class Projection(dict):
    """fit, slope (per step, cautious), line_slope, t, step (the newest), level, projected_step,
    early_step, late_step (None: not met), steps_to_level."""


def _add(sums: list[float], x: float, y: float, sign: float) -> None:
    """Add (sign 1) or remove (sign -1) a point's share of the sums x, x^2, x^3, x^4, y, xy, x^2 y, y^2."""
    x2 = x * x
    sums[0] += sign * x
    sums[1] += sign * x2
    sums[2] += sign * x2 * x
    sums[3] += sign * x2 * x2
    sums[4] += sign * y
    sums[5] += sign * x * y
    sums[6] += sign * x2 * y
    sums[7] += sign * y * y


def trend_push(mem: dict, step: int, entropy: float, size: int) -> None:
    """Add a point to the trend window and keep its regression sums up to date in O(1).

    The sums are over x = step - ref; every `size` pushes they are recomputed from the window
    with a new ref (its oldest step), which keeps x small and rounding from accumulating.
    mem["ts"] = [ref, pushes since recomputed, *sums].
    """
    window = mem.setdefault("t", [])
    window.append([step, entropy])
    state = mem.get("ts")
    if state is None or len(state) != 10 or state[1] >= size:
        del window[: max(0, len(window) - size)]
        ref = window[0][0]
        sums = [0.0] * 8
        for s, y in window:
            _add(sums, s - ref, y, 1.0)
        mem["ts"] = [ref, 0, *sums]
        return
    ref = state[0]
    sums = state[2:]
    _add(sums, step - ref, entropy, 1.0)
    if len(window) > size:
        s0, y0 = window.pop(0)
        _add(sums, s0 - ref, y0, -1.0)
    mem["ts"] = [ref, state[1] + 1, *sums]


def _det3(a, b, c, d, e, f, g, h, i) -> float:
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def _quadratic_now(n: int, u1: float, u2: float, u3: float, u4: float, y0: float, y1: float,
                   y2: float) -> tuple[float, float] | None:
    """Value and slope at u = 0 of the least-squares y = a + b u + c u^2 (Cramer's rule)."""
    det = _det3(n, u1, u2, u1, u2, u3, u2, u3, u4)
    if abs(det) < 1e-9 * max(1.0, abs(n * u2 * u4)):
        return None
    a = _det3(y0, u1, u2, y1, u2, u3, y2, u3, u4) / det
    b = _det3(n, y0, u2, u1, y1, u3, u2, y2, u4) / det
    return a, b


def trend_fit(mem: dict, window: int, level: float, z: float, quiet_t: float | None = None) -> Projection | None:
    """The projection of the window in `mem` onto `level`, or None until the window is full.

    ``quiet_t``: when the line's t statistic is above it and the line is above the level (entropy is
    not falling), the line alone is read: the quadratic could only raise the entropy and flatten the
    slope further, so a detector deciding on a fall needs no more (a saving on every quiet step)."""
    points, state = mem.get("t", []), mem.get("ts")
    n = len(points)
    if n < window or state is None or len(state) != 10:
        return None
    ref, _, s1, s2, s3, s4, sy, sxy, sx2y, syy = state
    cxx = s2 - s1 * s1 / n
    if cxx <= 1e-12:
        return None
    cxy, cyy = sxy - s1 * sy / n, syy - sy * sy / n
    slope = cxy / cxx
    resid = max(cyy - slope * cxy, 0.0) / max(n - 2, 1)
    se = math.sqrt(resid / cxx)
    t = slope / se if se > 0 else (-math.inf if slope < 0 else (math.inf if slope > 0 else 0.0))
    last = points[-1][0]
    if quiet_t is not None and t > quiet_t:
        line_now = sy / n + slope * (last - ref - s1 / n)
        if line_now > level:
            return Projection(fit=line_now, slope=slope, line_slope=slope, t=min(t, 1e9), step=last, level=level,
                              projected_step=None, early_step=None, late_step=None, steps_to_level=None)
    # The same sums about the newest step (u = x - xl): the quadratic's a and b are then the
    # entropy and its slope at that step.
    xl = last - ref
    u1 = s1 - n * xl
    u2 = s2 - 2 * xl * s1 + n * xl * xl
    u3 = s3 - 3 * xl * s2 + 3 * xl * xl * s1 - n * xl ** 3
    u4 = s4 - 4 * xl * s3 + 6 * xl * xl * s2 - 4 * xl ** 3 * s1 + n * xl ** 4
    uy, u2y = sxy - xl * sy, sx2y - 2 * xl * sxy + xl * xl * sy
    quad = _quadratic_now(n, u1, u2, u3, u4, sy, uy, u2y)
    line_now = sy / n + slope * (xl - s1 / n)
    fit, slope_now = (max(line_now, quad[0]), max(slope, quad[1])) if quad else (line_now, slope)
    spread = z / abs(t) if t else math.inf
    out = Projection(fit=fit, slope=slope_now, line_slope=slope, t=max(min(t, 1e9), -1e9), step=last, level=level,
                     projected_step=None, early_step=None, late_step=None, steps_to_level=None)
    if fit <= level:
        out.update(projected_step=last, early_step=last, late_step=last, steps_to_level=0)
    elif slope_now < 0:
        gap = level - fit
        out["steps_to_level"] = steps = math.ceil(gap / slope_now)
        out["projected_step"] = last + steps
        out["early_step"] = last + math.ceil(gap / (slope_now * (1 + spread)))
        if spread < 1:
            out["late_step"] = last + math.ceil(gap / (slope_now * (1 - spread)))
    return out
