"""Where the sub-images of an HR image lie, the tile grid they are stored on, and which patch sizes they serve.

Sub-images are cut as BasicSR's ``extract_subimages`` does: ``crop``-sized windows every ``step`` pixels, plus
one more window aligned to the image edge when the regular ones stop short of it, so the borders are kept.
When LR copies at several scales are stored, every offset must be a multiple of each scale (HR offset = LR
offset x scale), i.e. of their least common multiple ``unit``; the edge window is then aligned to the edge
rounded down to ``unit`` (at most ``unit - 1`` pixels are lost; DIV2K sizes are multiples of 12: none).

Overlapping windows repeat pixels ((crop / step)^2 ~ 3.3x for DIV2K at 480/240), so the records store each
pixel once, on the grid of all window starts and ends ("tiles"); a sub-image is the tiles it covers.
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["unit_of", "usable_size", "axis_windows", "tile_bounds", "check_settings", "check_gt_size",
           "window_reachable"]


def unit_of(scales: Sequence[int]) -> int:
    """The alignment unit: least common multiple of the scales (1 without LR)."""
    return math.lcm(*[int(s) for s in scales]) if scales else 1


def usable_size(n: int, scales: Sequence[int]) -> int:
    """Length of an HR axis that every LR copy covers exactly: ``min_s (n // s) * s`` (MATLAB modcrop)."""
    return min([(n // s) * s for s in scales] or [n])


def axis_windows(n: int, crop: int, step: int, unit: int = 1) -> tuple[list[int], int]:
    """Window starts along one axis of usable length ``n`` and the window length.

    Regular starts ``0, step, 2 step, ...`` while the window fits, then one window aligned to the edge (rounded
    down to ``unit``) if the last regular one stops short. An axis shorter than ``crop`` gives one window of
    ``n`` rounded down to ``unit`` (empty list if that is 0).
    """
    if n < crop:
        size = (n // unit) * unit
        return ([0] if size > 0 else []), size
    starts = list(range(0, n - crop + 1, step))
    edge = ((n - crop) // unit) * unit
    if edge > starts[-1]:
        starts.append(edge)
    return starts, crop


def tile_bounds(starts: Sequence[int], size: int) -> list[int]:
    """Sorted tile boundaries along an axis: every window start and end (each pixel then lies in one tile)."""
    return sorted(set(starts) | {s + size for s in starts})


def check_settings(crop: int, step: int, scales: Sequence[int]) -> None:
    """Raise ValueError (naming the option) unless crop and step are positive multiples of the scales' lcm."""
    unit = unit_of(scales)
    if crop < 1 or step < 1:
        raise ValueError(f"--crop {crop} and --step {step} must be positive")
    if step > crop:
        raise ValueError(f"--step {step} is larger than --crop {crop}: pixels between sub-images would be lost")
    for name, v in (("--crop", crop), ("--step", step)):
        if v % unit:
            raise ValueError(f"{name} {v} must be a multiple of {unit} (the lcm of the scales {list(scales)}) "
                             "so that HR offset = LR offset x scale at every scale")


def check_gt_size(crop: int, step: int, gt_size: int, where: str = "records") -> None:
    """Reject a ``gt_size`` that some window positions could not reach: needs ``crop - step >= gt_size``.

    A ``gt_size`` window starting anywhere lies in the sub-image starting at most ``step - 1`` pixels before it,
    which holds it when ``crop - step >= gt_size`` (:func:`window_reachable` checks this exhaustively).
    """
    if crop - step < gt_size:
        raise ValueError(
            f"data config: gt_size {gt_size} > crop - step = {crop} - {step} = {crop - step} of {where}: "
            f"some {gt_size}x{gt_size} patches of the source images lie in no sub-image; remake the records "
            f"with --step <= {crop - gt_size} or a larger --crop, or lower gt_size"
        )


def window_reachable(n: int, crop: int, step: int, gt: int, unit: int = 1, align: int = 1) -> bool:
    """Brute force: is every ``gt`` window at a multiple of ``align`` inside the usable axis in some sub-image?"""
    starts, size = axis_windows(n, crop, step, unit)
    if not starts:
        return False
    extent = max(starts) + size  # the part of the axis the sub-images cover
    for p in range(0, extent - gt + 1, align):
        if not any(s <= p and p + gt <= s + size for s in starts):
            return False
    return True
