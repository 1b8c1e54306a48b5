"""Sample Celery app that stands in for a user's image in the runtime tests."""

from sample_app.celery import app

__all__ = ["app"]
