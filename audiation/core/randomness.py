"""Random streams that do not depend on the device or the batch: one stream per target row.

Each value is a pure function of (seed, target key, draw number, index), computed with a counter-based
integer hash in ordinary tensor ops. So a target draws the same numbers alone or in any batch, on CPU or
CUDA (to float rounding), and a draw for the whole batch costs a fixed handful of kernels however many
rows it has: no per-row `torch.Generator`, which costs two launches per row per step and cannot cross
devices (a CUDA generator fed to a CPU `randn` crashed every GPU run).
"""

from __future__ import annotations

import math

import torch

_MASK = 0xFFFF_FFFF
_GOLDEN = 0x9E37_79B9  # spreads consecutive counters across the 32-bit space


def _mix(x):
    """A 32-bit integer hash with good avalanche ("lowbias32"): for Python ints and int64 tensors alike.

    Products are taken modulo 2**32 by masking; in int64 a wrapped product keeps its low 32 bits right."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB_352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846C_A68B) & _MASK
    return x ^ (x >> 16)


def row_seed(seed: int, key: int) -> int:
    """The stream of one target: a 32-bit number from the run's seed and the target's key."""
    return _mix((_mix(seed & _MASK) + _GOLDEN * _mix(key & _MASK)) & _MASK)


class Streams:
    """One random stream per batch row. Every call is one numbered draw for all rows at once.

    Calls must come in the same order to give the same numbers (they do: the loop is deterministic);
    `draws` counts them, so it is easy to check that a step's count does not grow with the batch.
    """

    def __init__(self, seed: int, keys: list[int], device: str | torch.device = "cpu"):
        self.seeds = torch.tensor([row_seed(seed, k) for k in keys], dtype=torch.int64, device=device)[:, None]
        self.draws = 0
        self._index_hashes: dict[int, torch.Tensor] = {}  # the same counts every step: hashed once

    def __len__(self) -> int:
        return self.seeds.shape[0]

    @property
    def device(self) -> torch.device:
        return self.seeds.device

    def _bits(self, count: int) -> torch.Tensor:
        """(rows, count) independent 24-bit integers for the next draw number."""
        salt = _mix((self.draws * _GOLDEN) & _MASK)
        self.draws += 1
        if count not in self._index_hashes:
            self._index_hashes[count] = _mix(torch.arange(count, dtype=torch.int64, device=self.device))
        return _mix(_mix(self.seeds ^ salt) ^ self._index_hashes[count]) >> 8

    def uniform(self, count: int) -> torch.Tensor:
        """(rows, count) floats in [0, 1), float32: 24-bit integers scaled exactly."""
        return self._bits(count).float() * 2.0**-24

    def normal(self, *shape: int) -> torch.Tensor:
        """(rows, *shape) standard normal floats, float32 (Box-Muller on one draw of 2 x half the values)."""
        count = math.prod(shape)
        half = (count + 1) // 2
        bits = self._bits(2 * half).float()
        radius = torch.sqrt(-2 * torch.log((bits[:, :half] + 1) * 2.0**-24))  # (0, 1]: never log(0)
        angle = (2 * math.pi * 2.0**-24) * bits[:, half:]
        values = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
        return values[:, :count].reshape(len(self), *shape)
