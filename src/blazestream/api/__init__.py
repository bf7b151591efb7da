"""The HTTP API and live web page of a run: add and remove cameras while it goes on, and watch them.

`service.prepare_api_run` checks the settings, builds the dynamic runner and binds the port before the
run starts (so bad settings end with exit 2); the server (uvicorn) runs in a thread of the run's process.
"""
