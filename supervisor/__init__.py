"""sm-entry: a container entrypoint (PID 1) for SageMaker training and serving."""

__version__ = "0.1.0"
