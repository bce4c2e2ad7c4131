"""gunicorn's configuration for dpm_async (docs/deployment.md): `make run` passes it with --config,
and gunicorn reads ./gunicorn.conf.py by default, so every gunicorn started beside manage.py - the
tests', the benchmarks', the fuzzer's - serves the way production does.

Only hooks and logging live here; the bind address, workers and threads stay on the command line.
"""

from dpm_async import server

# Before anything else: a misspelt variable stops the service here, with one line.
settings = server.settings_or_exit("gunicorn")

# Before any import of prometheus_client (the application's, in the workers): multiprocess mode
# is chosen when prometheus_client is first imported.
metrics_directory, metrics_directory_is_ours = server.metrics_directory_prepare()

logger_class = "dpm_async.server.GunicornLogger"


def post_worker_init(worker):
    server.request_context_fresh(worker)
    # Each web process also settles dead runs (an INLINE run whose process died, say) without the
    # cron. Imported here, in the worker: Django is set up only once the application is loaded.
    from operations.maintenance import operations_sweeper_start

    operations_sweeper_start()


def pre_request(worker, req):
    server.request_correlation_bind(worker, req)


def child_exit(arbiter, worker):
    server.worker_metrics_forget(worker.pid)


def on_exit(arbiter):
    if metrics_directory_is_ours:
        server.metrics_directory_remove(metrics_directory)
