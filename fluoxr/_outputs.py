"""Moved to :mod:`fluoxr.io.safety`; this name is the same module, kept for code that imports it.

``fluoxr._outputs`` *is* ``fluoxr.io.safety`` (not a copy of its names), so
its state (locks held by this process) and any patch made through either name
are shared.
"""

import sys

from .io import safety as _safety

sys.modules[__name__] = _safety
