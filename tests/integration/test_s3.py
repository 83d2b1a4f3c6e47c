"""s3:// submit directories against a real S3 server (moto's) on 127.0.0.1.

Credentials come as the AWS SDKs find them: a real HTTP endpoint in the
container-credentials format, environment variables, or nothing at all.
A small proxy in front of moto sees each GET (its signature's region), can
fail the first ones with a real 503, and can speak TLS with a certificate made
for the test: the frozen binary then loads the OpenSSL it keeps in its PYZ.
"""

from __future__ import annotations

import datetime
import http.client
import http.server
import io
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time

import pytest

from tests.integration.test_train import env, failure, make_tree, train

BUCKET = "sm-entry-code"
KEY = "job-1/source/sourcedir.tar.gz"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documented example, no secret
# The program reports what it saw: its files, region and its parent's (sm-entry's) peak memory.
PROBE = """
import json, os
status = open(f"/proc/{os.getppid()}/status").read()
peak_kib = int(status.split("VmHWM:")[1].split()[0])
with open(os.path.join(os.environ["SM_MODEL_DIR"], "probe.json"), "w") as out:
    json.dump({"files": sorted(os.listdir(".")), "region": os.environ["SAGEMAKER_REGION"],
               "parent_peak_kib": peak_kib}, out)
print("trained from s3")
"""

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")


def archive(files: dict[str, bytes], compress: bool = True) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def moto():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key=KEY,
                      Body=archive({"train.py": PROBE.encode(), "helper.py": b"X = 1\n"}))
    yield endpoint, client
    server.stop()


class Proxy(http.server.ThreadingHTTPServer):
    """Forwards each GET to moto as it came (Host included: the signature covers it)."""

    daemon_threads = True

    def __init__(self, upstream: str, tls_context=None) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.upstream = upstream.split("://", 1)[1]
        self.requests: list[dict[str, str]] = []
        self.fail_next = 0
        self.stall = False  # send the head and a little of the body, then nothing
        self.stalled = threading.Event()
        self.release = threading.Event()
        if tls_context is not None:
            self.socket = tls_context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if hasattr(self.socket, "context") else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
        self.thread.join()


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Proxy

    def do_GET(self) -> None:
        self.server.requests.append(dict(self.headers))
        if self.server.fail_next > 0:
            self.server.fail_next -= 1
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=30)
        upstream.putrequest("GET", self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            upstream.putheader(name, value)
        upstream.endheaders()
        response = upstream.getresponse()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("server", "date", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.end_headers()
        if self.server.stall:
            self.wfile.write(response.read(100))
            self.wfile.flush()
            self.server.stalled.set()
            self.server.release.wait(60)
        while chunk := response.read(1 << 20):
            self.wfile.write(chunk)
        upstream.close()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def proxy(moto):
    server = Proxy(moto[0])
    yield server
    server.close()


class CredentialsEndpoint(http.server.ThreadingHTTPServer):
    """The container credentials endpoint: JSON as ECS/SageMaker serve it."""

    daemon_threads = True

    def __init__(self, expiration: datetime.datetime, access_key: str = ACCESS_KEY) -> None:
        super().__init__(("127.0.0.1", 0), CredentialsHandler)
        self.body = json.dumps({
            "AccessKeyId": access_key, "SecretAccessKey": SECRET_KEY, "Token": "session-token",
            "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()
        self.calls = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v2/credentials/job"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class CredentialsHandler(http.server.BaseHTTPRequestHandler):
    server: CredentialsEndpoint

    def do_GET(self) -> None:
        self.server.calls += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args) -> None:
        pass


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@pytest.fixture
def credentials_endpoint():
    servers: list[CredentialsEndpoint] = []

    def start(expires_in: datetime.timedelta = datetime.timedelta(hours=6), **kwargs):
        servers.append(CredentialsEndpoint(_now() + expires_in, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def nowhere(tmp_path) -> dict[str, str]:
    """No credentials or region anywhere but what a test adds: no files, no IMDS."""
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials")}


def run_job(sm_entry, tmp_path, endpoint, url=f"s3://{BUCKET}/{KEY}", **extra):
    root = make_tree(tmp_path / "ml", hyperparameters={
        "sagemaker_submit_directory": json.dumps(url), "sagemaker_program": '"train.py"'})
    # Our TMPDIR (the run's private one, checked empty at the end) for what the download writes.
    result = train(sm_entry, root, AWS_ENDPOINT_URL_S3=endpoint, TMPDIR=os.environ["TMPDIR"],
                   **{**nowhere(tmp_path), **extra})
    return root, result


def probe(root) -> dict:
    return json.loads((root / "model" / "probe.json").read_text())


def scope_region(request_headers: dict[str, str]) -> str:
    """The region of a SigV4 Authorization header's credential scope."""
    match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request",
                      request_headers["Authorization"])
    assert match, request_headers["Authorization"]
    return match.group(1)


def test_archive_on_s3_is_downloaded_extracted_and_run(sm_entry, tmp_path, proxy,
                                                     credentials_endpoint):
    creds = credentials_endpoint()
    root, result = run_job(sm_entry, tmp_path, proxy.url,
                           AWS_CONTAINER_CREDENTIALS_FULL_URI=creds.url, AWS_REGION="eu-west-1")
    assert 0 == result.returncode, result.stderr[-3000:]
    assert "trained from s3" in result.stdout
    assert ["helper.py", "train.py"] == probe(root)["files"]
    assert ["helper.py", "train.py"] == sorted(os.listdir(root / "code"))  # temp file gone
    assert 1 == creds.calls  # the credentials came from the container endpoint
    assert 1 == len(proxy.requests)
    assert "X-Amz-Security-Token" in proxy.requests[0]  # its session token signed the GET
    assert "eu-west-1" == scope_region(proxy.requests[0])
    delivered = [json.loads(line) for line in result.stderr.splitlines()
                 if '"code delivered"' in line]
    assert delivered and delivered[0]["action"].startswith(f"downloaded s3://{BUCKET}/{KEY} (")


def test_region_comes_from_the_config_file(sm_entry, tmp_path, proxy):
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = eu-west-3\n")
    root, result = run_job(sm_entry, tmp_path, proxy.url, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                           AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_CONFIG_FILE=str(config))
    assert 0 == result.returncode, result.stderr[-3000:]
    assert "eu-west-3" == scope_region(proxy.requests[0])  # the signature's region
    assert "eu-west-3" == probe(root)["region"]  # and SAGEMAKER_REGION, as boto3 finds it


def test_no_region_anywhere_signs_for_us_east_1(sm_entry, tmp_path, proxy):
    root, result = run_job(sm_entry, tmp_path, proxy.url, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                           AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    assert 0 == result.returncode, result.stderr[-3000:]
    assert "us-east-1" == scope_region(proxy.requests[0])
    assert "" == probe(root)["region"]


def test_missing_key_names_the_bucket_and_key(sm_entry, tmp_path, moto):
    url = f"s3://{BUCKET}/job-1/source/missing.tar.gz"
    root, result = run_job(sm_entry, tmp_path, moto[0], url=url, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                           AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    assert 65 == result.returncode, result.stderr[-3000:]
    assert failure(root).startswith(
        f"submit directory {url}: no such key 'job-1/source/missing.tar.gz' in bucket "
        f"'{BUCKET}' (NoSuchKey: ")
    assert [] == os.listdir(root / "code")  # the temporary download is removed


def test_missing_bucket_is_named(sm_entry, tmp_path, moto):
    url = "s3://no-such-bucket-here/sourcedir.tar.gz"
    root, result = run_job(sm_entry, tmp_path, moto[0], url=url, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                           AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    assert 65 == result.returncode
    assert failure(root).startswith(
        f"submit directory {url}: no such bucket 'no-such-bucket-here' (NoSuchBucket: ")


def test_no_credentials_says_where_it_looked(sm_entry, tmp_path, moto):
    root, result = run_job(sm_entry, tmp_path, moto[0])
    assert 65 == result.returncode
    text = failure(root)
    assert text.startswith(f"submit directory s3://{BUCKET}/{KEY}: no AWS credentials found; "
                           "looked at environment variables")
    for place in ("container credentials endpoint", str(tmp_path / "no-credentials"),
                  str(tmp_path / "no-config"),
                  "instance metadata (IMDSv2): disabled by AWS_EC2_METADATA_DISABLED"):
        assert place in text


def test_expired_container_credentials_are_reported(sm_entry, tmp_path, moto,
                                                    credentials_endpoint):
    creds = credentials_endpoint(expires_in=-datetime.timedelta(hours=1))
    root, result = run_job(sm_entry, tmp_path, moto[0],
                           AWS_CONTAINER_CREDENTIALS_FULL_URI=creds.url)
    assert 65 == result.returncode
    assert failure(root).startswith(f"submit directory s3://{BUCKET}/{KEY}: the AWS "
                                    "credentials from container-role have expired")
    assert SECRET_KEY not in failure(root) + result.stderr + result.stdout


@pytest.fixture
def moto_auth(moto):
    """moto checks signatures and IAM policies from now on (until the test ends)."""
    endpoint, _ = moto
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    iam.create_user(UserName="no-rights")
    key = iam.create_access_key(UserName="no-rights")["AccessKey"]
    _reset_auth(endpoint, b"0")
    yield key["AccessKeyId"], key["SecretAccessKey"]
    _reset_auth(endpoint, b"inf")
    iam.delete_access_key(UserName="no-rights", AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName="no-rights")


def _reset_auth(endpoint: str, count: bytes) -> None:
    connection = http.client.HTTPConnection(endpoint.split("://", 1)[1], timeout=10)
    connection.request("POST", "/moto-api/reset-auth", body=count)
    assert 200 == connection.getresponse().status
    connection.close()


def test_access_denied_names_the_bucket_and_key(sm_entry, tmp_path, moto, moto_auth):
    access_key, secret_key = moto_auth
    root, result = run_job(sm_entry, tmp_path, moto[0], AWS_ACCESS_KEY_ID=access_key,
                           AWS_SECRET_ACCESS_KEY=secret_key)
    assert 65 == result.returncode
    assert failure(root).startswith(
        f"submit directory s3://{BUCKET}/{KEY}: access denied to key '{KEY}' in bucket "
        f"'{BUCKET}' for the credentials from env (AccessDenied: ")
    assert secret_key not in failure(root) + result.stderr + result.stdout


def test_unknown_access_key_is_reported_as_rejected_credentials(sm_entry, tmp_path, moto,
                                                                moto_auth):
    root, result = run_job(sm_entry, tmp_path, moto[0], AWS_ACCESS_KEY_ID="AKIAUNKNOWNKEY000000",
                           AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    assert 65 == result.returncode
    assert failure(root).startswith(
        f"submit directory s3://{BUCKET}/{KEY}: S3 rejected the credentials from env as "
        "expired or invalid (InvalidAccessKeyId: ")


def test_a_503_is_retried_as_the_standard_retry_mode_does(sm_entry, tmp_path, proxy):
    proxy.fail_next = 2  # the third and last attempt succeeds
    _, result = run_job(sm_entry, tmp_path, proxy.url, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                           AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    assert 0 == result.returncode, result.stderr[-3000:]
    assert 3 == len(proxy.requests)
    assert "trained from s3" in result.stdout


def test_persistent_503_fails_after_three_attempts(sm_entry, tmp_path, proxy):
    proxy.fail_next = 5
    root, result = run_job(sm_entry, tmp_path, proxy.url, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                           AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    assert 65 == result.returncode
    assert 3 == len(proxy.requests)
    assert failure(root).startswith(f"submit directory s3://{BUCKET}/{KEY}: S3 answered HTTP "
                                    "503 after 3 attempts (SlowDown: Please reduce")


def test_unreachable_endpoint_is_a_network_error(sm_entry, tmp_path):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    root, result = run_job(sm_entry, tmp_path, endpoint, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                           AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    assert 65 == result.returncode
    assert failure(root).startswith(f"submit directory s3://{BUCKET}/{KEY}: network error "
                                    f"reaching {endpoint} after 3 attempts: ")


@pytest.fixture
def tls_proxy(moto, tmp_path):
    """The proxy behind TLS, with a certificate for 127.0.0.1 made now; and its CA file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "sm-entry test")])
    now = _now()
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = Proxy(moto[0], tls_context=context)
    yield server, str(cert_file)
    server.close()


def test_https_endpoint_is_verified_with_the_configured_ca_bundle(sm_entry, tmp_path,
                                                                  tls_proxy):
    server, ca_file = tls_proxy
    assert server.url.startswith("https://")
    root, result = run_job(sm_entry, tmp_path, server.url, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                           AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_CA_BUNDLE=ca_file)
    assert 0 == result.returncode, result.stderr[-3000:]
    assert "trained from s3" in result.stdout
    # Without that CA, the certificate is refused: TLS verification is on.
    root, result = run_job(sm_entry, tmp_path / "untrusted", server.url,
                           AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    assert 65 == result.returncode
    assert "CERTIFICATE_VERIFY_FAILED" in failure(root)


def test_large_archive_is_streamed_to_disk(static_only, tmp_path, moto):
    endpoint, client = moto
    payload = os.urandom(96 << 20)
    key = "job-2/source/sourcedir.tar.gz"
    client.put_object(Bucket=BUCKET, Key=key, Body=archive(
        {"train.py": PROBE.encode(), "weights.bin": payload}, compress=False))
    del payload
    try:
        root, result = run_job([static_only], tmp_path, endpoint, url=f"s3://{BUCKET}/{key}",
                               AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    finally:
        client.delete_object(Bucket=BUCKET, Key=key)
    assert 0 == result.returncode, result.stderr[-3000:]
    assert (96 << 20) == (root / "code" / "weights.bin").stat().st_size
    # sm-entry's peak memory stays far below the archive's size: it was never held whole.
    assert probe(root)["parent_peak_kib"] < 80 << 10


def test_sigterm_during_a_stalled_download_stops_the_job(sm_entry, tmp_path, proxy):
    proxy.stall = True
    root = make_tree(tmp_path / "ml", hyperparameters={
        "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/{KEY}"),
        "sagemaker_program": '"train.py"'})
    process = subprocess.Popen(
        [*sm_entry, "--root", str(root), "train"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env=env(AWS_ENDPOINT_URL_S3=proxy.url, TMPDIR=os.environ["TMPDIR"],
                AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                **nowhere(tmp_path)))
    try:
        assert proxy.stalled.wait(30), "the download never started"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert 128 + signal.SIGTERM == process.returncode, err[-3000:]
    assert time.monotonic() - started < 15  # not the read timeout (60 s)
    assert "stopped by SIGTERM during the download of the code" in failure(root)
    assert not (root / "model" / "probe.json").exists()  # the program never ran


@pytest.mark.binary
def test_static_binary_downloads_over_tls_in_an_image_without_python_or_openssl(
        static_only, tmp_path, moto, tls_proxy):
    from tests.binary.test_chroot import BUSYBOX_PATHS, in_chroot
    from tests.support import require_root

    require_root()
    busybox = next((p for p in BUSYBOX_PATHS if os.path.exists(p)), None)
    if busybox is None:
        pytest.skip("needs busybox-static (make test-deps installs it)")
    server, ca_file = tls_proxy
    _, client = moto
    key = "job-3/source/sourcedir.tar.gz"
    client.put_object(Bucket=BUCKET, Key=key, Body=archive(
        {"train.sh": b"echo trained in scratch > /opt/ml/model/done\n"}))
    image = tmp_path / "image"
    for directory in ("bin", "usr/local/bin", "proc", "etc", "opt/ml/input/config"):
        (image / directory).mkdir(parents=True)
    (image / "tmp").mkdir(mode=0o1777)
    shutil.copy(busybox, image / "bin" / "busybox")
    os.symlink("busybox", image / "bin" / "sh")
    shutil.copy(static_only, image / "usr" / "local" / "bin" / "sm-entry")
    shutil.copy(ca_file, image / "etc" / "test-ca.pem")
    (image / "opt/ml/input/config/hyperparameters.json").write_text(json.dumps({
        "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/{key}"),
        "sagemaker_program": '"train.sh"'}))
    exports = (f"export AWS_ENDPOINT_URL_S3={server.url} AWS_ACCESS_KEY_ID={ACCESS_KEY} "
               f"AWS_SECRET_ACCESS_KEY='{SECRET_KEY}' AWS_EC2_METADATA_DISABLED=true HOME=/")
    try:
        trusted = in_chroot(image, f"{exports} AWS_CA_BUNDLE=/etc/test-ca.pem", "train")
        assert 0 == trusted.returncode, trusted.stderr.decode()[-3000:]
        assert "trained in scratch\n" == (image / "opt/ml/model/done").read_text()
        # No CA bundle given and none in the image: the binary's own (botocore's) is used,
        # which does not know the test's CA.
        (image / "opt/ml/model/done").unlink()
        shutil.rmtree(image / "opt/ml/code")
        untrusted = in_chroot(image, exports, "train")
        assert 65 == untrusted.returncode
        assert "CERTIFICATE_VERIFY_FAILED" in (image / "opt/ml/output/failure").read_text()
        assert [] == os.listdir(image / "tmp")
    finally:
        client.delete_object(Bucket=BUCKET, Key=key)
