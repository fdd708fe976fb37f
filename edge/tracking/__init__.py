"""Multi-object tracking: ``Tracker().update(detections)`` gives each detection a persistent id.

    tracker = edge.Tracker()
    for frame in source:
        tracked = tracker.update(model(frame.image))   # Detections with track_ids
"""

from edge.tracking.assignment import hungarian, linear_assignment
from edge.tracking.tracker import Tracker

__all__ = ["Tracker", "hungarian", "linear_assignment"]
