"""How far a measured traffic split may fall from the requested one by chance alone.

A data plane that sends each request to the canary with probability p, independently, gives a canary
count K ~ Binomial(n, p) over n requests. `acceptance_range` is the central range of counts that such a
correct data plane produces with the given confidence, computed exactly (no normal approximation, which
is poor at 1 % weights): a measured count outside it means the data plane is not honouring p, with a
false alarm at most 1 - confidence of the time. `wilson_interval` is the usual 95 % interval of the share
actually measured, for people reading a benchmark.
"""

from __future__ import annotations

import math


def _pmf(n: int, p: float) -> list[float]:
    """P(K = k) for k = 0..n, in log space so that n in the tens of thousands does not underflow."""
    if p <= 0.0 or p >= 1.0:
        certain = 0 if p <= 0.0 else n
        return [1.0 if k == certain else 0.0 for k in range(n + 1)]
    log_n = math.lgamma(n + 1)
    return [math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p))
            for k in range(n + 1)]


def acceptance_range(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """The counts [low, high] with P(K < low) <= (1 - confidence) / 2 and P(K > high) <= (1 - confidence) / 2."""
    if not 0.0 <= p <= 1.0 or not 0.0 < confidence < 1.0 or n < 0:
        raise ValueError(f"need 0 <= p <= 1, 0 < confidence < 1 and n >= 0, got p={p}, confidence={confidence}, n={n}")
    tail = (1.0 - confidence) / 2
    pmf = _pmf(n, p)
    low, below = 0, 0.0
    while low < n and below + pmf[low] <= tail:
        below += pmf[low]
        low += 1
    high, above = n, 0.0
    while high > low and above + pmf[high] <= tail:
        above += pmf[high]
        high -= 1
    return low, high


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a measured share (95 % with the default z); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
