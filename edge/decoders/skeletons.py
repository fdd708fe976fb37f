"""Named keypoint topologies (names and the pairs a skeleton joins) and the decoder fields that use them.

A decoder config names a topology (``"skeleton": "coco17"``) or lists pairs (``[[0, 1], [1, 2]]``);
``keypoint_names`` default to the named topology's. Indices are 0-based.
"""

from typing import Dict, List, NamedTuple, Optional, Tuple

from edge.decoders.params import ParamReader


class Topology(NamedTuple):
    """Keypoint names (K of them) and the (i, j) pairs joined by skeleton lines."""

    names: Tuple[str, ...]
    pairs: Tuple[Tuple[int, int], ...]


_SIDES = ("left", "right")
COCO17_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear") + tuple(
    f"{side}_{part}" for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle") for side in _SIDES)
# Ultralytics' pose skeleton (its kpt 1-based pairs minus one): legs, hips, torso, arms, face.
COCO17 = Topology(COCO17_NAMES, (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
    (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)))

_FINGERS = (("thumb", ("cmc", "mcp", "ip", "tip")), ("index_finger", ("mcp", "pip", "dip", "tip")),
            ("middle_finger", ("mcp", "pip", "dip", "tip")), ("ring_finger", ("mcp", "pip", "dip", "tip")),
            ("pinky", ("mcp", "pip", "dip", "tip")))
HAND_NAMES = ("wrist",) + tuple(f"{finger}_{joint}" for finger, joints in _FINGERS for joint in joints)
# MediaPipe's HAND_CONNECTIONS: each finger from its base, and the palm (wrist-thumb, knuckles, wrist-pinky).
MEDIAPIPE_HAND = Topology(HAND_NAMES, tuple(
    [(0, 1), (1, 2), (2, 3), (3, 4)]
    + [(base + i, base + i + 1) for base in (5, 9, 13, 17) for i in range(3)]
    + [(0, 5), (5, 9), (9, 13), (13, 17), (0, 17)]))

TOPOLOGIES: Dict[str, Topology] = {"coco17": COCO17, "mediapipe_hand": MEDIAPIPE_HAND}


def read_keypoint_fields(read: ParamReader, num_keypoints: int) -> Tuple[Optional[List[str]],
                                                                         Optional[List[Tuple[int, int]]]]:
    """``keypoint_names`` and ``skeleton`` of a decoder section for K = ``num_keypoints``, validated.

    skeleton: a topology name (one of TOPOLOGIES, for exactly its keypoint count) or a list of [i, j]
    pairs with 0 <= i, j < K. Names default to a named topology's.
    """
    names = read.strings("keypoint_names", None)
    if names is not None and len(names) != num_keypoints:
        raise read.fail("keypoint_names", f"{num_keypoints} names (one per keypoint)", names)
    raw = read.values.get("skeleton")
    if raw is None:
        return names, None
    if isinstance(raw, str):
        topology = TOPOLOGIES.get(raw)
        if topology is None:
            raise read.fail("skeleton", "a list of [i, j] pairs or one of " + ", ".join(sorted(TOPOLOGIES)), raw)
        if len(topology.names) != num_keypoints:
            raise read.fail("skeleton", f"a topology for {num_keypoints} keypoints ('{raw}' has "
                                        f"{len(topology.names)})", raw)
        return (names if names is not None else list(topology.names)), list(topology.pairs)
    expected = f"a list of [i, j] pairs with 0 <= i, j < {num_keypoints}, or a topology name"
    if not isinstance(raw, (list, tuple)):
        raise read.fail("skeleton", expected, raw)
    pairs: List[Tuple[int, int]] = []
    for pair in raw:
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < num_keypoints for i in pair)
        if not ok:
            raise read.fail("skeleton", expected, pair)
        pairs.append((int(pair[0]), int(pair[1])))
    return names, pairs
