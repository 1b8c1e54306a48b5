"""Serve the celery-platform component package to the Pulumi engine (``pulumi package add``, ``up``).

The Python language host runs this directory as ``python <repo>/provider <engine address>``, in
provider/venv, where requirements.txt installed celery_platform from the repository root. Everything
else (the schema, Construct) is in ``celery_platform.package``.
"""

from celery_platform.package.provider import serve

if __name__ == "__main__":
    serve()
