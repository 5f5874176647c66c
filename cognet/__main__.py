"""``python -m cognet``: the same program as the ``cognet`` console script.

``python -m`` puts the current directory first on ``sys.path``. cognet's sibling packages
have common names (``tasks``, ``rules``, ``analysis``), so a folder of that name where the
command is run (an experiment's output folder, say) would shadow them. Unless the current
directory is a cognet checkout, it is taken off the path, as the console script does.
"""

import os
import sys

_cwd = os.getcwd()
if not os.path.isdir(os.path.join(_cwd, "cognet")):
    sys.path[:] = [p for p in sys.path if p not in ("", _cwd)]

from .cli import main  # noqa: E402

main()
