"""Connected components of a detection mask computed block by block.

Each block's core is labelled on its own (``scipy.ndimage.label``, face connectivity);
labels that touch across a block face are joined with a union-find, so the objects are
exactly those of labelling the whole mask at once. Only small pieces are kept per block:
each label's bounding box and boolean cutout, and the labels on the block's faces.
"""

import numpy as np
from scipy import ndimage

__all__ = ["Segment", "BlockLinker"]


class Segment:
    """One object: a bounding box in the cube and its boolean mask inside the box.

    Parameters
    ----------
    slices : tuple of slice
        Bounding box (chan, y, x), 0-based, in cube pixels.
    mask : ndarray of bool
        The object's voxels inside the box.
    """

    __slots__ = ("slices", "mask")

    def __init__(self, slices, mask):
        self.slices = tuple(slices)
        self.mask = mask

    @property
    def n_pixels(self):
        """Number of voxels."""
        return int(self.mask.sum())

    @property
    def n_channels(self):
        """Number of channels holding at least one voxel."""
        return int(self.mask.any(axis=(1, 2)).sum())

    @property
    def origin(self):
        """Corner of the box (chan, y, x)."""
        return tuple(s.start for s in self.slices)

    def voxels(self):
        """Absolute (chan, y, x) index arrays of the voxels."""
        local = np.nonzero(self.mask)
        return tuple(idx + s.start for idx, s in zip(local, self.slices))

    @classmethod
    def merge(cls, segments):
        """One segment covering the union of several."""
        if len(segments) == 1:
            return segments[0]
        lo = [min(s.slices[a].start for s in segments) for a in range(3)]
        hi = [max(s.slices[a].stop for s in segments) for a in range(3)]
        mask = np.zeros([h - l for l, h in zip(lo, hi)], dtype=bool)
        for seg in segments:
            local = tuple(slice(s.start - l, s.stop - l) for s, l in zip(seg.slices, lo))
            mask[local] |= seg.mask
        return cls(tuple(slice(l, h) for l, h in zip(lo, hi)), mask)


class BlockLinker:
    """Accumulate labelled blocks and join the labels across block faces."""

    def __init__(self):
        self._parent = []
        self._pieces = []
        self._faces = {}

    def _find(self, i):
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _union(self, a, b):
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)

    def add_block(self, index, core_slices, mask):
        """Label the mask of one block core and link it to its already-added neighbours.

        Parameters
        ----------
        index : tuple of int
            Position of the block in the block grid.
        core_slices : tuple of slice
            Where the core lies in the cube.
        mask : ndarray of bool
            Detection mask of the core.
        """
        labels, count = ndimage.label(mask)
        offset = len(self._parent)
        self._parent.extend(range(offset, offset + count))
        for local, box in enumerate(ndimage.find_objects(labels), start=1):
            cutout = labels[box] == local
            absolute = tuple(slice(b.start + c.start, b.stop + c.start)
                             for b, c in zip(box, core_slices))
            self._pieces.append(Segment(absolute, cutout))
        glabels = np.where(labels > 0, labels + offset - 1, -1)
        for axis in range(3):
            self._faces[(index, axis, 0)] = np.take(glabels, 0, axis=axis)
            self._faces[(index, axis, 1)] = np.take(glabels, -1, axis=axis)
            lower = list(index)
            lower[axis] -= 1
            neighbour_face = self._faces.get((tuple(lower), axis, 1))
            if neighbour_face is not None:
                self._link(neighbour_face, self._faces[(index, axis, 0)])

    def _link(self, face_a, face_b):
        both = (face_a >= 0) & (face_b >= 0)
        for a, b in set(zip(face_a[both].tolist(), face_b[both].tolist())):
            self._union(a, b)

    def segments(self):
        """The joined objects, in a deterministic order (by first voxel in the cube)."""
        groups = {}
        for i, piece in enumerate(self._pieces):
            groups.setdefault(self._find(i), []).append(piece)
        merged = [Segment.merge(group) for group in groups.values()]
        merged.sort(key=lambda seg: tuple(idx[0] for idx in seg.voxels()))
        return merged
