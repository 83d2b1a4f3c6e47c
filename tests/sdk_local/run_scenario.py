"""Drive one scenario through the real SageMaker Python SDK v2's local mode.

Run by tests/binary/test_sdk_local.py with the SDK's own venv (make test:
build/venv-sagemaker-sdk, from tests/sdk_local/requirements.txt), inside the
network namespace of the test's private dockerd, as

    python run_scenario.py SCENARIO SPEC.json RESULT.json

SPEC holds the image, the role and the paths the scenario needs; the
environment gives DOCKER_HOST, a private HOME (whose ~/.sagemaker/config.yaml
sets local_code and container_root), the SDK defaults file that opts out of
telemetry, and dummy AWS credentials. Whatever happens, RESULT gets a JSON
object: {"ok": bool, "error": str, ...what the scenario saw}. The SDK's own
output (the compose logs of the containers) goes to stdout.
"""

import json
import logging
import os
import sys
import time
import traceback
import urllib.request


def container_root_dirs(spec):
    return set(os.listdir(spec["container_root"]))


def estimator(spec, **kwargs):
    from sagemaker.estimator import Estimator

    return Estimator(
        image_uri=spec["image"],
        role=spec["role"],
        instance_type="local",
        sagemaker_session=spec["session"],
        **{"instance_count": 1, **kwargs},
    )


def train_in_image(spec, result):
    """(1) The script in the image, named by SAGEMAKER_PROGRAM; hyperparameters as given."""
    job = estimator(spec, hyperparameters={"epochs": 3, "lr": 0.05},
                    environment={"SAGEMAKER_PROGRAM": "train.py"},
                    base_job_name="sm-entry-in-image")
    job.fit({"train": "file://" + spec["data"]}, logs="All")
    result["model_data"] = job.model_data
    result["hyperparameters"] = job.hyperparameters()


def train_source_dir(spec, result):
    """(2) entry_point + source_dir: local mode mounts source_dir at /opt/ml/code."""
    job = estimator(spec, entry_point="entry.py", source_dir=spec["source_dir"],
                    hyperparameters={"epochs": 2, "tag": "from source_dir"},
                    base_job_name="sm-entry-source-dir")
    job.fit(logs="All")
    result["model_data"] = job.model_data
    result["hyperparameters"] = job.hyperparameters()


def train_failure(spec, result):
    """(3) A script that raises, chosen by the sagemaker_program hyperparameter."""
    job = estimator(spec, hyperparameters={"sagemaker_program": "fail.py", "lr": -1},
                    base_job_name="sm-entry-failure")
    job.fit(logs="All")
    result["model_data"] = job.model_data


def two_hosts(spec, result):
    """(4) instance_count=2: two containers on compose's sagemaker-local network."""
    job = estimator(spec, instance_count=2, environment={"SAGEMAKER_PROGRAM": "hosts.py"},
                    base_job_name="sm-entry-two-hosts")
    job.fit(logs="All")
    result["model_data"] = job.model_data


def deploy(spec, result):
    """(5) Train, deploy the model, predict, delete the endpoint (SIGTERM: drained, exit 0)."""
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer

    job = estimator(spec, hyperparameters={"epochs": 1, "lr": 0.05},
                    environment={"SAGEMAKER_PROGRAM": "train.py"},
                    base_job_name="sm-entry-deploy")
    job.fit({"train": "file://" + spec["data"]}, logs="All")
    result["model_data"] = job.model_data
    started = time.monotonic()
    # In local mode the endpoint is up (its /ping answered 200) when create_endpoint returns;
    # wait=True would only add the SDK's first 30 s poll of describe_endpoint.
    predictor = job.deploy(initial_instance_count=1, instance_type="local", wait=False,
                           serializer=CSVSerializer(), deserializer=JSONDeserializer())
    result["deploy_s"] = round(time.monotonic() - started, 2)
    endpoint = spec["session"].sagemaker_client.describe_endpoint(predictor.endpoint_name)
    result["endpoint_status"] = endpoint["EndpointStatus"]
    result["predictions"] = predictor.predict([[1.0], [2.0], [-1.5]])
    with urllib.request.urlopen(f"http://localhost:{spec['serving_port']}/ping", timeout=10) as r:
        result["ping"] = [r.status, r.read().decode()]
    predictor.delete_model()
    started = time.monotonic()
    predictor.delete_endpoint()  # the SDK stops compose: SIGTERM to the container
    result["delete_endpoint_s"] = round(time.monotonic() - started, 2)


def transform(spec, result):
    """(6) A batch transform of a CSV file, records batched (MultiRecord) by line."""
    from sagemaker.model import Model

    model = Model(image_uri=spec["image"], model_data="file://" + spec["model_tar"],
                  role=spec["role"], sagemaker_session=spec["session"])
    transformer = model.transformer(instance_count=1, instance_type="local",
                                    strategy="MultiRecord", assemble_with="Line",
                                    accept="text/csv", output_path="file://" + spec["output"])
    # Local mode runs the whole job inside this call. logs=True would ask CloudWatch for the
    # job's logs, and wait=True only adds a first 5 s sleep before describing the job.
    transformer.transform("file://" + spec["input"], content_type="text/csv", split_type="Line",
                          wait=False, logs=False)
    result["job_name"] = transformer.latest_transform_job.name
    description = spec["session"].sagemaker_client.describe_transform_job(result["job_name"])
    result["status"] = description["TransformJobStatus"]
    result["batch_strategy"] = description["BatchStrategy"]


SCENARIOS = {f.__name__.replace("_", "-"): f for f in
             (train_in_image, train_source_dir, train_failure, two_hosts, deploy, transform)}


def main():
    scenario, spec_path, result_path = sys.argv[1:4]
    with open(spec_path) as handle:
        spec = json.load(handle)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    result = {"scenario": scenario, "ok": False, "error": None}
    before = container_root_dirs(spec)
    started = time.monotonic()
    try:
        import sagemaker
        from sagemaker.local import LocalSession

        result["sdk_version"] = sagemaker.__version__
        spec["session"] = LocalSession()
        result["local_config"] = spec["session"].config
        SCENARIOS[scenario](spec, result)
        result["ok"] = True
    except Exception as error:  # reported to the test, which decides
        result["error"] = f"{type(error).__name__}: {error}"
        result["traceback"] = traceback.format_exc()
    finally:
        result["seconds"] = round(time.monotonic() - started, 2)
        result["new_container_root_dirs"] = sorted(container_root_dirs(spec) - before)
        sys.stdout.flush()
        with open(result_path, "w") as handle:
            json.dump(result, handle, indent=2, default=str)


if __name__ == "__main__":
    main()
