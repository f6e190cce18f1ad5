"""Shared pieces of the scan strategies: the associative combine and axis handling."""

from __future__ import annotations



def combine(left, right):
    """(a_i, x_i) ∘ (a_j, x_j) = (a_j·a_i, a_j·x_i + x_j): the recurrence's associative operator."""
    a_l, x_l = left
    a_r, x_r = right
    return a_r * a_l, a_r * x_l + x_r
