"""Serve the celery-platform component package to the Pulumi engine (``pulumi package add``, ``up``).

The Python language host runs this directory as ``python <repo>/provider <engine address>``, so
this directory is ``sys.path[0]`` and its modules import by their bare names.
"""

from component import COMPONENTS, PACKAGE
from pulumi.provider.experimental import component_provider_host

from celery_platform import __version__

if __name__ == "__main__":
    component_provider_host(components=COMPONENTS, name=PACKAGE, version=__version__)
