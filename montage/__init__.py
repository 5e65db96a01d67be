"""montage: from a planned, searched script to a cut film, its project and its studio.

Rooms, each a sub-package on its own floor (a room imports only the rooms below it, through
their ``__init__``): ``optimize`` (1: the rule engine) <- ``film`` (2: edit, render, exports)
<- ``sound`` and ``project`` (3: voice and music; the project folder's memory) <- ``pipeline``
(4: the one run that wires every stage) <- ``studio`` (5: the browser editor) <- ``cli`` (6:
the command line).
"""
