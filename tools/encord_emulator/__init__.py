"""A local stand-in for Encord's public API that the unmodified ``encord`` SDK talks to.

Start it with ``python -m encord_emulator`` or, in tests, with
:class:`encord_emulator.testing.EmulatorServer`. See ``README.md`` for routes, route names,
options and the admin interface.
"""

from __future__ import annotations
