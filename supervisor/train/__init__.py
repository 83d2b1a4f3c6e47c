"""The SageMaker training contract: the /opt/ml tree, config, environment, program, code."""
