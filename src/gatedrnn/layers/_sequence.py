"""How a Keras-style time mask maps onto the core's lengths, and back.

The core runs each sequence from step 0 for its length (or, with ``reverse``, from its last valid
step back to 0). A Keras mask may instead mark a left-padded run (``pad_sequences`` pads on the
left by default), and ``go_backwards`` reads the sequence from its end, padding first. Every such
case is one contiguous run of valid steps per sequence, so it is the core's call on the run
moved to the front: :class:`SequencePlan` decides whether that needs a gather (it does not for the
two common cases) and converts inputs, outputs and gradients between the user's time positions
and the core's.

Everything here works on batch-major views ``(B, T, ...)``.
"""

import numpy as np

__all__ = ["mask_runs", "SequencePlan", "core_layout", "from_core_layout"]


def mask_runs(mask, B, T, who):
    """``(start, length)`` int64 arrays of the single run of True in each row of ``mask`` (B, T).

    A row with no True has length 0 (start 0). Masks with holes are not sequences padded at
    one or both ends: a ValueError says so.
    """
    m = np.asarray(mask)
    if m.shape != (B, T):
        raise ValueError(f"{who}: mask expected shape (batch, time) = {(B, T)}, got {m.shape}")
    if m.dtype != np.bool_:
        if m.dtype.kind not in "biuf":
            raise TypeError(f"{who}: mask expected a boolean array, got dtype {m.dtype}")
        m = m != 0
    length = m.sum(axis=1, dtype=np.int64)
    if T == 0:
        return np.zeros(B, np.int64), length
    start = np.where(length > 0, np.argmax(m, axis=1), 0).astype(np.int64)
    if T:
        rises = m[:, 0].astype(np.int64) + (np.diff(m.astype(np.int8), axis=1) == 1).sum(axis=1)
        bad = np.flatnonzero(rises > 1)
        if bad.size:
            raise ValueError(
                f"{who}: mask expected one contiguous run of valid steps per sequence "
                f"(right- or left-padded); sequence {int(bad[0])} has {int(rises[bad[0]])} runs")
    return start, length


def core_layout(a):
    """A batch-major view as ``(array, batch_first)`` for the core, without a copy when either
    layout is contiguous."""
    if a.flags.c_contiguous:
        return a, True
    t = a.swapaxes(0, 1)
    if t.flags.c_contiguous:
        return t, False
    return np.ascontiguousarray(a), True


def from_core_layout(a, batch_first):
    return a if batch_first else a.swapaxes(0, 1)


class SequencePlan:
    """Maps one call's sequences (batch-major, B x T) onto a core call.

    ``start``/``length`` are the valid run of each sequence in *processing* order (reversed time
    when ``backwards``). Modes:

    - ``"front"``: every run starts at step 0 in processing order and time is not reversed: the
      core runs on the input as it is, with lengths.
    - ``"reverse"``: ``backwards`` with every run ending at the last processing step, i.e.
      starting at step 0 in the original order: the core runs with ``reverse=True``.
    - ``"gather"``: anything else: the runs are copied to the front first.
    """

    def __init__(self, B, T, start, length, backwards):
        self.B, self.T, self.backwards = B, T, backwards
        self.masked = start is not None
        if start is None:
            start = np.zeros(B, np.int64)
            length = np.full(B, T, np.int64)
        if backwards:
            start = T - (start + length)             # the run in processing order
            start[length == 0] = 0
        self.start, self.length = start, length
        self.end = start + length
        self.full = not self.masked or bool(np.all(length == T))
        if not backwards and np.all(start == 0):
            self.mode = "front"
        elif backwards and np.all((self.end == T) | (length == 0)):
            self.mode = "reverse"
        else:
            self.mode = "gather"
            t = np.arange(T)
            pos = start[:, None] + t                  # processing position of the core's step t
            self.valid = t < length[:, None]
            pos = np.where(self.valid, pos, 0)
            self.pos = pos
            self.src = (T - 1 - pos) if backwards else pos   # original time of that step

    @property
    def lengths(self):
        """What the core gets as ``lengths`` (None when every sequence is whole)."""
        return None if self.full else self.length

    @property
    def reverse(self):
        return self.mode == "reverse"

    # --- forward ----------------------------------------------------------------------------
    def core_input(self, xb):
        """The batch-major array the core runs on (a view for the front/reverse modes)."""
        if self.mode != "gather":
            return xb
        return np.take_along_axis(xb, self.src[:, :, None], axis=1)

    def to_processing(self, yb):
        """Core outputs (batch-major) -> outputs at processing positions, zero outside the runs."""
        if self.mode == "front":
            return yb
        if self.mode == "reverse":
            return yb[:, ::-1]
        return self._scatter(yb, self.pos)

    # --- backward ---------------------------------------------------------------------------
    def dy_to_core(self, dyp):
        """Gradients at processing positions -> the core's dy (steps past a length are ignored
        by the core, so they need no zeroing)."""
        if self.mode == "front":
            return dyp
        if self.mode == "reverse":
            return dyp[:, ::-1]
        return np.take_along_axis(dyp, self.pos[:, :, None], axis=1)

    def dx_from_core(self, dxb):
        """The core's dx (batch-major) -> dx at the original time positions."""
        if self.mode != "gather":
            return dxb
        return self._scatter(dxb, self.src)

    def _scatter(self, a, index):
        B, T = self.B, self.T
        out = np.zeros((B, T + 1) + a.shape[2:], a.dtype)       # column T takes the invalid steps
        idx = np.where(self.valid, index, T)
        np.put_along_axis(out, idx[:, :, None], a, axis=1)
        return out[:, :T]

    # --- Keras's output for masked steps ----------------------------------------------------
    def fill_after(self, yp):
        """Masked steps after a run repeat the run's last output (Keras, zero_output_for_mask
        False); steps before it stay zero (Keras starts from a zero "previous output")."""
        if not self.masked or np.all(self.end >= self.T):
            return yp
        t = np.arange(self.T)
        idx = np.where(t < self.end[:, None], t, np.maximum(self.end - 1, 0)[:, None])
        return np.take_along_axis(yp, idx[:, :, None], axis=1)

    def fill_after_backward(self, dy):
        if not self.masked or np.all(self.end >= self.T):
            return dy
        t = np.arange(self.T)
        after = t >= self.end[:, None]
        dyp = np.where(after[:, :, None], 0, dy)
        tail = np.where(after[:, :, None], dy, 0).sum(axis=1)
        rows = np.flatnonzero(self.length > 0)
        dyp[rows, self.end[rows] - 1] += tail[rows]
        return dyp

    def _last_valid(self, zero_output):
        # Keras's last output is its last processing step's output: the state after the last
        # valid step, except zero for an empty run, or (zero_output_for_mask) when the last
        # processing step is masked.
        if not self.masked:
            return None
        keep = (self.end == self.T) if zero_output else (self.length > 0)
        return None if np.all(keep) else keep[:, None]

    def last_output(self, h_n, zero_output=False):
        keep = self._last_valid(zero_output)
        return h_n if keep is None else np.where(keep, h_n, 0).astype(h_n.dtype, copy=False)

    def last_output_backward(self, dlast, zero_output=False):
        keep = self._last_valid(zero_output)
        return dlast if keep is None else np.where(keep, dlast, 0).astype(dlast.dtype, copy=False)
