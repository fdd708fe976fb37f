"""Training-side conversions: trained models become ONNX files with the edge config embedded.

``edge-export onnx SOURCE --config edge.json --output model.onnx``. Depends on ``edge``
(never the other way round).
"""

import sys

if sys.version_info < (3, 8):  # this file parses on 3.6 so that the message, not a SyntaxError, is what users see
    raise SystemExit("error: edge-export needs Python 3.8 or newer, this is Python {}.{}; it runs on the training "
                     "machine. Fix: export there (python3.8+ -m pip install 'edge[export]'), then copy the .onnx "
                     "to the board".format(*sys.version_info[:2]))
