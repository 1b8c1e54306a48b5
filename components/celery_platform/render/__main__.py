"""``python -m celery_platform.render <stack>``: print a stack's Kubernetes objects as YAML."""

import gc
import sys

from celery_platform.render import main

code = main()
# Collect the mock engine's event loops while asyncio can still close them cleanly; left to interpreter
# shutdown, their __del__ prints a spurious "Invalid file descriptor" traceback.
gc.collect()
sys.exit(code)
