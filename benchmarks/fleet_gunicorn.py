"""The gunicorn configuration of every instance of a fleet (benchmarks/fleet.py): `gunicorn -c THIS_FILE`.

Records when each worker is ready, can turn flask-vault's random spreads off and trace
every HTTP request a worker sends, and marks dead workers for prometheus_client.
"""

from __future__ import annotations

import json
import os
import time


def post_fork(server, worker):
    if os.environ.get("FLEET_NO_JITTER"):
        import flask_vault.jitter

        flask_vault.jitter.ENABLED = False
    if os.environ.get("FLEET_TRACE_DIR"):
        _trace_requests(os.path.join(os.environ["FLEET_TRACE_DIR"], f"{os.getpid()}.trace"))


def _trace_requests(path):
    # Every HTTP request this worker sends: its start time and the status it got (0: no answer).
    import requests.adapters

    send = requests.adapters.HTTPAdapter.send

    def traced(self, request, *args, **kwargs):
        started = time.time()
        status = 0
        try:
            response = send(self, request, *args, **kwargs)
            status = response.status_code
            return response
        finally:
            with open(path, "a") as out:
                out.write(f"{started:.6f} {status} {request.path_url.split('?')[0]}\n")

    requests.adapters.HTTPAdapter.send = traced


def post_worker_init(worker):
    path = os.path.join(os.environ["FLEET_READY_DIR"], str(os.getpid()))
    with open(path + ".tmp", "w") as out:
        json.dump({"pid": os.getpid(), "instance": int(os.environ["FLEET_INSTANCE"]), "ready": time.time()}, out)
    os.replace(path + ".tmp", path + ".ready")


def child_exit(server, worker):
    # What docs/health.md asks of every gunicorn that exports flask-vault's metrics in multiprocess mode.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
