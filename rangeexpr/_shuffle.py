"""A seeded pseudo-random permutation of ``range(n)``, computed one index at a time.

Why not ``random.shuffle``: a sweep may have 10^30 points, so the order must be a function
of the index alone (O(1) memory, random access, slices, shards and resume all keep
working), and the same seed must give the same order on every machine and Python version.

How: a keyed Feistel network on pairs ``(L, R)`` in ``Z_a x Z_b`` with ``a = ceil(sqrt(n))``
and ``b = ceil(n / a)``, adding the round function modulo the half's size (the numeral-string
Feistel of format-preserving encryption, as in NIST FF1). It is a bijection on
``range(a * b)``, and ``a * b - n < a``, so "cycle walking" (apply it again until the value
falls below ``n``) is almost never needed, unlike a Feistel on bits whose domain may be up to
twice ``n``. The round function is splitmix64's finalizer (add a key, xorshift-multiply
twice, xorshift, in a lane of 64 bits or a multiple of 64), with per-round keys and
multipliers taken from BLAKE2b of the seed, so nothing depends on Python's ``hash()`` or the
``random`` module. A mixer, not a bare multiply, because on the tiny halves of small sweeps a
multiply degenerates into an affine map, and affine permutations are far from uniform. For
``n <= 2**64`` the same arithmetic runs vectorized in numpy (both halves fit in 32 bits, so
uint64 sums never overflow and uint64 products wrap modulo 2**64 exactly as the Python code
masks), which is how iteration and sampling stay fast.

Version 1 of the order is pinned by ``tests/data/shuffle_golden.json``: any change to the
constants below is a new order and must change ``_VERSION``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._text import int_text

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Shuffle", "normalize_seed"]

_VERSION = b"rangeexpr-shuffle-v1"
_ROUNDS = 8
_NUMPY_MAX = 2**64
_BATCH = 4096


def normalize_seed(seed: int | str) -> str:
    """The seed as text, so ``--shuffle 42`` and ``shuffled(42)`` give the same order."""
    if isinstance(seed, bool) or not isinstance(seed, int | str):
        raise TypeError(f"a shuffle seed is an int or a str, not {type(seed).__name__}")
    return seed if isinstance(seed, str) else int_text(seed)


def _key(material: bytes, label: str, bits: int) -> int:
    """``bits`` pseudo-random bits from BLAKE2b over the seed material and a label."""
    out = 0
    block = 0
    have = 0
    while have < bits:
        digest = hashlib.blake2b(
            material + f"/{label}/{block}".encode(), digest_size=64, person=b"rangeexpr"
        ).digest()
        out |= int.from_bytes(digest, "little") << have
        have += 512
        block += 1
    return out & ((1 << bits) - 1)


class Shuffle:
    """A bijection of ``range(n)`` chosen by ``seed``: ``permute(i)``, ``unpermute(j)``.

    ``Shuffle(n, seed)[p]`` is the index at position ``p`` of the shuffled order; the first
    ``k`` positions are a uniform-looking sample of ``k`` distinct indices.
    """

    __slots__ = ("_a", "_b", "_half", "_rounds", "_shifts", "n", "seed", "vectorized")

    def __init__(self, n: int, seed: int | str) -> None:
        if n < 0:
            raise ValueError(f"cannot shuffle a negative number of points ({n})")
        self.n = n
        self.seed = normalize_seed(seed)
        self._a = math.isqrt(n - 1) + 1 if n > 1 else 1  # modulus of the high half L
        self._b = -(-n // self._a) if n > 1 else 1  # modulus of the low half R
        self.vectorized = n <= _NUMPY_MAX
        material = _VERSION + b"|" + self.seed.encode() + b"|" + int_text(n).encode()
        # The mixer's lane: 64 bits, or a multiple of 64 at least twice the halves' width,
        # so the top half of the lane, times the modulus, shifted down, lands in range.
        lane = 64 * max(1, -(-2 * (max(self._a, self._b) - 1).bit_length() // 64))
        self._shifts = (lane * 30 // 64, lane * 27 // 64, lane * 31 // 64, (1 << lane) - 1)
        self._half = lane // 2
        rounds: list[tuple[int, int, int, int]] = []
        for r in range(_ROUNDS):
            add_key = _key(material, f"k{r}", lane)
            mul1 = _key(material, f"m{r}", lane) | 1
            mul2 = _key(material, f"n{r}", lane) | 1
            # Round r adds into the high half: modulus a on even rounds, b on odd ones.
            rounds.append((add_key, mul1, mul2, self._a if r % 2 == 0 else self._b))
        self._rounds = tuple(rounds)

    def __repr__(self) -> str:
        return f"Shuffle(n={self.n}, seed={self.seed!r})"

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, position: int) -> int:
        return self.permute(position)

    def __iter__(self) -> Iterator[int]:
        return self.positions(0, self.n)

    # -- one index at a time, any size --------------------------------------------------
    # Round r maps (L, R) to (R, (L + F_r(R)) mod m_r), where F_r is splitmix64's finalizer
    # (shifts scaled to the lane) applied to R plus a round key, brought into range(m_r) by
    # multiplying its top half (Lemire's reduction, no division):
    #   z = R + k; z = (z ^ z >> s1) * m1; z = (z ^ z >> s2) * m2; z ^= z >> s3  (mod 2**lane)
    #   F = ((z >> lane/2) * m_r) >> lane/2
    # It is inlined in both directions for speed.

    def _encrypt(self, x: int) -> int:
        s1, s2, s3, mask = self._shifts
        half = self._half
        hi, lo = divmod(x, self._b)
        for add_key, mul1, mul2, modulus in self._rounds:
            z = (lo + add_key) & mask
            z = ((z ^ (z >> s1)) * mul1) & mask
            z = ((z ^ (z >> s2)) * mul2) & mask
            f = (((z ^ (z >> s3)) >> half) * modulus) >> half
            hi, lo = lo, (hi + f) % modulus
        return hi * self._b + lo

    def _decrypt(self, y: int) -> int:
        s1, s2, s3, mask = self._shifts
        half = self._half
        hi, lo = divmod(y, self._b)
        for add_key, mul1, mul2, modulus in reversed(self._rounds):
            z = (hi + add_key) & mask
            z = ((z ^ (z >> s1)) * mul1) & mask
            z = ((z ^ (z >> s2)) * mul2) & mask
            f = (((z ^ (z >> s3)) >> half) * modulus) >> half
            hi, lo = (lo - f) % modulus, hi
        return hi * self._b + lo

    def permute(self, i: int) -> int:
        """The index at position ``i`` of the shuffled order."""
        if not 0 <= i < self.n:
            raise IndexError(f"position {i} is out of range for {self.n} points")
        x = self._encrypt(i)
        while x >= self.n:
            x = self._encrypt(x)
        return x

    def unpermute(self, j: int) -> int:
        """The position of index ``j`` in the shuffled order (``permute``'s inverse)."""
        if not 0 <= j < self.n:
            raise IndexError(f"index {j} is out of range for {self.n} points")
        x = self._decrypt(j)
        while x >= self.n:
            x = self._decrypt(x)
        return x

    # -- many at a time ----------------------------------------------------------------

    def permute_array(self, positions: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        """``permute`` of every element (each in ``range(n)``), vectorized; needs n <= 2**64."""
        import numpy as np  # here, not at import: ``rangeexpr check`` starts without numpy

        if not self.vectorized:
            raise ValueError(f"permute_array needs n <= 2**64, this shuffle has n = {self.n}")
        out = self._encrypt_array(positions)
        if self.n == self._a * self._b:  # no cycle walking (and n may not fit in uint64)
            return out
        n = np.uint64(self.n)
        todo = np.flatnonzero(out >= n)
        while todo.size:
            out[todo] = self._encrypt_array(out[todo])
            todo = todo[out[todo] >= n]
        return out

    def _encrypt_array(self, x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        import numpy as np

        b = np.uint64(self._b)
        hi, lo = np.divmod(x, b)
        s1, s2, s3, half = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
        for add_key, mul1, mul2, modulus in self._rounds:
            # The lane is 64 bits here: uint64 arithmetic wraps exactly as _encrypt masks;
            # the moduli are below 2**32, so (z >> 32) * m and hi + f cannot overflow.
            m = np.uint64(modulus)
            z = lo + np.uint64(add_key)
            z ^= z >> s1
            z *= np.uint64(mul1)
            z ^= z >> s2
            z *= np.uint64(mul2)
            z ^= z >> s3
            z >>= half
            z *= m
            z >>= half
            z += hi
            np.subtract(z, m, out=z, where=z >= m)  # (hi + f) mod m, as both are below m
            hi, lo = lo, z
        result: npt.NDArray[np.uint64] = hi * b + lo
        return result

    def positions(self, start: int, stop: int) -> Iterator[int]:
        """``permute(p)`` for ``p`` in ``range(start, stop)``, in batches when numpy can."""
        if not self.vectorized:
            yield from map(self.permute, range(start, stop))
            return
        import numpy as np

        for lo in range(start, stop, _BATCH):
            hi = min(stop, lo + _BATCH)
            yield from self.permute_array(np.arange(lo, hi, dtype=np.uint64)).tolist()
