"""engage's tests. Importing this package (pytest does, before the first conftest) lets Python write bytecode.

The suite starts hundreds of Python processes: xdist workers, servers, the CLI, Celery workers, the demo. With
``PYTHONDONTWRITEBYTECODE`` set (containers often set it), each compiled engage and rewrote every test module from
source again: twice the CPU to collect the tests, about 0.8 s more for each process that imports the app. The
bytecode goes to the usual, git-ignored ``__pycache__`` folders; this process and every one it starts write it.
"""

import os
import sys

os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False
