"""The job system: the ledger (truth), Huey lanes (dispatch), the worker host."""
