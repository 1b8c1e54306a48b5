"""Entry point of the celery-platform component package: runs provider/ (see PulumiPlugin.yaml).

`pulumi package add` starts a Python plugin from its root ``__main__.py`` when it does not honour
``main:``; this shim makes both paths reach the same provider.
"""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parent / "provider"), run_name="__main__")
