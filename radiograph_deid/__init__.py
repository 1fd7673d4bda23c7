"""radiograph-deid: make radiographs safe to share.

The data flow, top to bottom: read -> de-identify header -> detect -> retain -> redact -> verify -> write.
"""

__version__ = "0.1.0"
