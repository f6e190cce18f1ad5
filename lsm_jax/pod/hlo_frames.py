"""The source of an HLO instruction: the stack-frame tables of an optimized HLO module's text
(`FileNames`, `FunctionNames`, `FileLocations`, `StackFrames`, printed before its computations) and an
instruction's `stack_frame_id` in its metadata, turned into the Python call chain that traced it."""

from __future__ import annotations

import re


class Frames:
    """The module's stack-frame tables (`FileNames`, `FunctionNames`, `FileLocations`, `StackFrames`):
    an instruction's `stack_frame_id` to its Python call chain, innermost first."""

    def __init__(self, text: str):
        def table(name):
            m = re.search(rf"^{name}\n(.*?)(?:\n\n|\Z)", text, re.S | re.M)
            rows = {}
            for line in (m.group(1).splitlines() if m else []):
                key, _, value = line.partition(" ")
                if key.isdigit():
                    rows[int(key)] = value
            return rows
        self.files = {k: v.strip('"') for k, v in table("FileNames").items()}
        self.functions = {k: v.strip('"') for k, v in table("FunctionNames").items()}
        self.locations = {k: dict((a, int(b)) for a, b in re.findall(r"(\w+)=(\d+)", v))
                          for k, v in table("FileLocations").items()}
        self.frames = {}
        for k, v in table("StackFrames").items():
            d = dict((a, int(b)) for a, b in re.findall(r"(\w+)=(\d+)", v))
            self.frames[k] = (d.get("file_location_id", 0), d.get("parent_frame_id", 0))
        # The text prints a frame's parent as the parent's id + 1 (1: no parent; jax 0.12's XLA). Detected,
        # not assumed: with the wrong offset many frames (those listed right after their parent) would
        # point at themselves.
        self_loops = {off: sum(p - off == k for k, (_, p) in self.frames.items()) for off in (0, 1)}
        self.offset = min(self_loops, key=self_loops.get)

    def chain(self, frame_id: int) -> list[tuple[str, str, int]]:
        """(file, function, line) from the innermost frame outwards."""
        out, seen = [], set()
        while frame_id in self.frames and frame_id not in seen:
            seen.add(frame_id)
            loc_id, parent = self.frames[frame_id]
            loc = self.locations.get(loc_id, {})
            out.append((self.files.get(loc.get("file_name_id", 0), ""),
                        self.functions.get(loc.get("function_name_id", 0), ""), loc.get("line", 0)))
            frame_id = parent - self.offset
        return out
