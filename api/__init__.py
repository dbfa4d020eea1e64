"""Steel's HTTP service: FastAPI routers, schemas, settings, auth, the job store and the job runner.

Calls steel_data; never processes data in a request handler (jobs run in worker processes, `api.worker`).
Importing this package imports no web framework: `api.app` does, and the worker never imports it.
"""
