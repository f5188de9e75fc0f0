"""A seeded pseudo-random permutation of ``range(n)``, computed one index at a time.

Why not ``random.shuffle``: a sweep may have 10^30 points, so the order must be a function
of the index alone (O(1) memory, random access, slices, shards and resume all keep
working), and the same seed must give the same order on every machine and Python version.

How: a keyed Feistel network on the smallest bit width ``w`` with ``2**w >= n`` (halves of
``w // 2`` and ``w - w // 2`` bits, alternating), which is a bijection on ``range(2**w)``;
"cycle walking" (apply it again until the value falls below ``n``) restricts it to a
bijection on ``range(n)``, with fewer than two steps on average since ``2**w < 2n``. The
round function is a splitmix64-style mixer (add a key, then xorshift-multiply twice and
xorshift, in a lane of 64 bits or a multiple of 64) with per-round keys and multipliers
taken from BLAKE2b of the seed, so nothing depends on Python's ``hash()`` or the ``random``
module. A mixer, not a simple multiply, because on the 1- and 2-bit halves of small sweeps
a multiply degenerates into an affine map, and affine permutations are far from uniform.
For ``w <= 64`` the same arithmetic runs vectorized in numpy (uint64 arithmetic wraps
modulo 2**64, as the Python code masks), which is how iteration and sampling stay fast.

Version 1 of the order is pinned by ``tests/data/shuffle_golden.json``: any change to the
constants below is a new order and must change ``_VERSION``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

__all__ = ["Shuffle", "normalize_seed"]

_VERSION = b"rangeexpr-shuffle-v1"
_ROUNDS = 8
_NUMPY_MAX_BITS = 64
_BATCH = 4096


def normalize_seed(seed: int | str) -> str:
    """The seed as text, so ``--shuffle 42`` and ``shuffled(42)`` give the same order."""
    if isinstance(seed, bool) or not isinstance(seed, int | str):
        raise TypeError(f"a shuffle seed is an int or a str, not {type(seed).__name__}")
    return str(seed)


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

    __slots__ = ("_a", "_b", "_rounds", "_shifts", "bits", "n", "seed")

    def __init__(self, n: int, seed: int | str) -> None:
        if n < 0:
            raise ValueError(f"cannot shuffle a negative number of points ({n})")
        self.n = n
        self.seed = normalize_seed(seed)
        # At least two bits, so that each half has at least one.
        self.bits = max(2, (n - 1).bit_length())
        self._a = self.bits // 2  # width of the high half
        self._b = self.bits - self._a  # width of the low half
        material = _VERSION + b"|" + self.seed.encode() + b"|" + str(self.bits).encode()
        # The mixer's lane: 64 bits, or a multiple of 64 for halves wider than that.
        lane = 64 * max(1, -(-self._b // 64))
        self._shifts = (lane * 30 // 64, lane * 27 // 64, lane * 31 // 64, (1 << lane) - 1)
        rounds: list[tuple[int, int, int, int]] = []
        for r in range(_ROUNDS):
            add_key = _key(material, f"k{r}", lane)
            mul1 = _key(material, f"m{r}", lane) | 1
            mul2 = _key(material, f"n{r}", lane) | 1
            # Round r reads the half that is currently low: b bits on even rounds, a on odd.
            width_out = self._a if r % 2 == 0 else self._b
            rounds.append((add_key, mul1, mul2, (1 << width_out) - 1))
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

    # The round function, inlined in both directions for speed: splitmix64's finalizer
    # (shifts scaled to the lane) applied to the half plus a round key:
    #   z = v + k; z = (z ^ z >> s1) * m1; z = (z ^ z >> s2) * m2; z ^= z >> s3  (mod 2**lane)

    def _encrypt(self, x: int) -> int:
        s1, s2, s3, mask = self._shifts
        hi, lo = x >> self._b, x & ((1 << self._b) - 1)
        for add_key, mul1, mul2, mask_out in self._rounds:
            z = (lo + add_key) & mask
            z = ((z ^ (z >> s1)) * mul1) & mask
            z = ((z ^ (z >> s2)) * mul2) & mask
            hi, lo = lo, (hi ^ z ^ (z >> s3)) & mask_out
        return (hi << self._b) | lo

    def _decrypt(self, y: int) -> int:
        s1, s2, s3, mask = self._shifts
        hi, lo = y >> self._b, y & ((1 << self._b) - 1)
        for add_key, mul1, mul2, mask_out in reversed(self._rounds):
            z = (hi + add_key) & mask
            z = ((z ^ (z >> s1)) * mul1) & mask
            z = ((z ^ (z >> s2)) * mul2) & mask
            hi, lo = (lo ^ z ^ (z >> s3)) & mask_out, hi
        return (hi << self._b) | lo

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
        """``permute`` of every element, vectorized; needs ``self.bits <= 64``."""
        if self.bits > _NUMPY_MAX_BITS:
            raise ValueError(f"permute_array needs at most 64 bits, this shuffle has {self.bits}")
        out = self._encrypt_array(positions)
        if self.n == 1 << self.bits:  # no cycle walking (and n itself does not fit in uint64)
            return out
        n = np.uint64(self.n)
        todo = np.flatnonzero(out >= n)
        while todo.size:
            out[todo] = self._encrypt_array(out[todo])
            todo = todo[out[todo] >= n]
        return out

    def _encrypt_array(self, x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        b = np.uint64(self._b)
        hi = x >> b
        lo = x & np.uint64((1 << self._b) - 1)
        s1, s2, s3 = np.uint64(30), np.uint64(27), np.uint64(31)
        for add_key, mul1, mul2, mask_out in self._rounds:
            # The lane is 64 bits here: uint64 arithmetic wraps exactly as _mix masks.
            z = lo + np.uint64(add_key)
            z = (z ^ (z >> s1)) * np.uint64(mul1)
            z = (z ^ (z >> s2)) * np.uint64(mul2)
            z ^= z >> s3
            hi, lo = lo, (hi ^ z) & np.uint64(mask_out)
        result: npt.NDArray[np.uint64] = (hi << b) | lo
        return result

    def positions(self, start: int, stop: int) -> Iterator[int]:
        """``permute(p)`` for ``p`` in ``range(start, stop)``, in batches when numpy can."""
        if self.bits > _NUMPY_MAX_BITS:
            yield from map(self.permute, range(start, stop))
            return
        for lo in range(start, stop, _BATCH):
            hi = min(stop, lo + _BATCH)
            yield from self.permute_array(np.arange(lo, hi, dtype=np.uint64)).tolist()
