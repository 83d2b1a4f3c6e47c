"""Download one S3 object to a local file: a submit directory given as s3://BUCKET/KEY.

Imported only for such a submit directory: botocore, urllib3 and OpenSSL take
tens of milliseconds to load and no other path needs them.

botocore does what must behave as the AWS SDKs do: the credential chain
(environment, container endpoint, shared files, instance metadata), the
region, SigV4 signing and the standard retry mode's conditions and backoff.
Its service models are not bundled (28 MB), so there is no S3 client: the one
GET is built, signed and sent here, and S3's XML error body is read with a
regular expression (the frozen binary has no XML parser of its own to spare).
The body is streamed to disk in chunks: a 1 GB archive never sits in memory.
"""

from __future__ import annotations

import html
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supervisor import errors, tls

CHUNK = 1 << 20
ERROR_BODY_LIMIT = 64 << 10
TIMEOUT = 60.0  # seconds to connect, and between two reads of the body
DEFAULT_REGION = "us-east-1"  # with no region anywhere; S3 names the bucket's own if it differs
# Where botocore looks, in its order, for the message when it finds nothing.
CREDENTIAL_SOURCES = (
    "environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
    "the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI)",
    "the shared credentials and config files",
    "instance metadata (IMDSv2)",
)
# What S3 says when the credentials themselves are wrong rather than not allowed.
REJECTED_CREDENTIALS = {"ExpiredToken", "TokenRefreshRequired", "InvalidAccessKeyId",
                        "SignatureDoesNotMatch", "InvalidToken", "InvalidSecurity"}
DENIED = {"AccessDenied", "AllAccessDisabled", "AccountProblem"}
# System CA bundles of the common base images (Debian/Ubuntu, RHEL/Amazon Linux, SUSE, Alpine).
SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
)


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class S3Error:
    """A non-2xx answer: its status and, from the XML body, S3's code and message."""

    status: int
    code: str
    message: str
    bucket_region: str | None = None


def parse_url(url: str) -> S3Object:
    """s3://BUCKET/KEY, refused with a SetupError when it names no object."""
    rest = url[len("s3://"):] if url.startswith("s3://") else ""
    bucket, _, key = rest.partition("/")
    if not bucket or not key or key.endswith("/"):
        raise errors.SetupError(f"submit directory {url}: not an S3 object URL; expected "
                                "s3://BUCKET/KEY (the .tar.gz the SDK uploaded)")
    return S3Object(bucket, key)


def parse_error(status: int, body: bytes, headers: dict[str, str] | None = None) -> S3Error:
    """S3's `<Error><Code>..</Code><Message>..</Message>` (an empty body for HEAD-like answers)."""
    text = body.decode("utf-8", "replace")
    fields = {name: html.unescape(match.group(1)).strip()
              for name in ("Code", "Message", "Region")
              if (match := re.search(rf"<{name}>(.*?)</{name}>", text, re.DOTALL))}
    region = (headers or {}).get("x-amz-bucket-region") or fields.get("Region")
    return S3Error(status, fields.get("Code", ""), fields.get("Message", ""), region or None)


def endpoint(region: str, environ: dict[str, str] | os._Environ[str]) -> tuple[str, bool]:
    """The S3 endpoint URL and whether requests use path style (bucket in the path)."""
    custom = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if custom:
        return custom.rstrip("/"), True
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://s3.{region}.{domain}", False


def object_url(base: str, path_style: bool, obj: S3Object) -> str:
    key = urllib.parse.quote(obj.key, safe="/~")
    # A dotted bucket name breaks the TLS wildcard certificate as a host name.
    if path_style or "." in obj.bucket:
        return f"{base}/{obj.bucket}/{key}"
    scheme, _, host = base.partition("://")
    return f"{scheme}://{obj.bucket}.{host}/{key}"


def describe_failure(obj: S3Object, error: S3Error, credentials_from: str,
                     attempts: int) -> str:
    """The failure file's line for an S3 error answer."""
    what = f"submit directory {obj.url}"
    said = f"{error.code}: {error.message}" if error.code else f"HTTP {error.status}"
    if error.code == "NoSuchKey" or (error.status == 404 and not error.code):
        return f"{what}: no such key {obj.key!r} in bucket {obj.bucket!r} ({said})"
    if error.code == "NoSuchBucket":
        return f"{what}: no such bucket {obj.bucket!r} ({said})"
    if error.code in REJECTED_CREDENTIALS:
        return (f"{what}: S3 rejected the credentials from {credentials_from} as expired or "
                f"invalid ({said})")
    if error.code in DENIED or error.status == 403:
        return (f"{what}: access denied to key {obj.key!r} in bucket {obj.bucket!r} for the "
                f"credentials from {credentials_from} ({said})")
    after = f" after {attempts} attempts" if attempts > 1 else ""
    return f"{what}: S3 answered HTTP {error.status}{after} ({said})"


def _no_credentials(obj: S3Object, environ: dict[str, str] | os._Environ[str]) -> str:
    config = environ.get("AWS_CONFIG_FILE", "~/.aws/config")
    shared = environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
    imds = ("disabled by AWS_EC2_METADATA_DISABLED"
            if environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true" else "no answer")
    looked = [
        f"{CREDENTIAL_SOURCES[0]}: unset",
        f"{CREDENTIAL_SOURCES[1]}: unset",
        f"{CREDENTIAL_SOURCES[2]} ({shared}, {config}): no credentials",
        f"{CREDENTIAL_SOURCES[3]}: {imds}",
    ]
    return (f"submit directory {obj.url}: no AWS credentials found; looked at "
            + "; ".join(looked))


class Downloader:
    """One S3 object to one local file, with the credentials and region the AWS SDKs find."""

    def __init__(self, environ: dict[str, str] | os._Environ[str] = os.environ,
                 sleep: Callable[[float], None] = time.sleep,
                 cancelled: Callable[[], bool] = lambda: False,
                 binary: str | None = None) -> None:
        self.environ = environ
        self.sleep = sleep
        self.cancelled = cancelled
        self.binary = binary  # the frozen binary we run as: it carries OpenSSL (tls.py)

    def download(self, url: str, target: str) -> int:
        """Write the object at `url` to `target` (created or truncated); returns its size."""
        obj = parse_url(url)
        tls.load(self.binary)  # before urllib3 is imported: it keeps `ssl` as it finds it then
        _quiet_libraries()
        import botocore.session

        session = botocore.session.Session()
        credentials = self._credentials(session, obj)
        region = (session.get_config_variable("region") or self.environ.get("AWS_REGION")
                  or DEFAULT_REGION)
        attempts = int(session.get_config_variable("max_attempts") or 3)
        with tls_verify(session, self.environ, self.binary) as verify:
            http = self._http(endpoint(region, self.environ)[0], verify)
            size, error, tries = self._get(http, credentials, region, obj, target, attempts)
            if error is not None and error.bucket_region and error.bucket_region != region \
                    and not self._custom_endpoint():
                # The bucket lives in another region: sign for that one, as botocore redirects.
                region = error.bucket_region
                size, error, tries = self._get(http, credentials, region, obj, target,
                                               attempts)
        if error is not None:
            raise errors.SetupError(describe_failure(obj, error, credentials.method, tries))
        return size

    def _custom_endpoint(self) -> bool:
        return bool(self.environ.get("AWS_ENDPOINT_URL_S3") or self.environ.get("AWS_ENDPOINT_URL"))

    def _credentials(self, session: Any, obj: S3Object) -> Any:
        """The chain's credentials (not yet frozen: refreshable ones refresh per attempt)."""
        from botocore.exceptions import BotoCoreError

        what = f"submit directory {obj.url}"
        try:
            credentials = session.get_credentials()
        except BotoCoreError as exc:
            raise errors.SetupError(f"{what}: cannot get AWS credentials: {exc}") from None
        if credentials is None:
            raise errors.SetupError(_no_credentials(obj, self.environ))
        self._frozen(credentials, obj)  # fail now when they are expired for good
        return credentials

    def _frozen(self, credentials: Any, obj: S3Object) -> Any:
        from botocore.exceptions import BotoCoreError, DataNotFoundError

        what = f"submit directory {obj.url}"
        try:
            return credentials.get_frozen_credentials()
        except RuntimeError as exc:  # botocore: "refreshed, but ... still expired"
            raise errors.SetupError(f"{what}: the AWS credentials from {credentials.method} "
                                    f"have expired (refreshing them gave expired ones: {exc})"
                                    ) from None
        except DataNotFoundError:  # an STS/SSO client: its service model is not bundled
            raise errors.SetupError(
                f"{what}: the AWS credentials from {credentials.method} need a call to AWS "
                "(STS or SSO), which sm-entry cannot make; give credentials directly "
                "(environment, container endpoint, shared files or instance metadata)"
            ) from None
        except BotoCoreError as exc:
            raise errors.SetupError(f"{what}: cannot refresh the AWS credentials from "
                                    f"{credentials.method}: {exc}") from None

    def _http(self, base: str, verify: str | bool) -> Any:
        """botocore's HTTP layer: its connection errors are what the retry conditions know."""
        from botocore.httpsession import URLLib3Session
        from botocore.utils import get_environ_proxies

        return URLLib3Session(verify=verify, proxies=get_environ_proxies(base),
                              timeout=TIMEOUT, max_pool_connections=1)

    def _get(self, http: Any, credentials: Any, region: str, obj: S3Object, target: str,
             max_attempts: int) -> tuple[int, S3Error | None, int]:
        """GET with the standard retry mode; (size, None, attempts) or (0, error, attempts).

        botocore's own pieces of its standard mode decide: the max-attempts,
        transient (5xx, RequestTimeout, connection errors) and throttling
        (codes, 429) checkers, and the jittered exponential backoff. Left out:
        the checkers that need a service model (there is none: modeled errors,
        DynamoDB's and STS's special cases) and the retry quota, which matters
        to a client making many calls.
        """
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
        from botocore.retries import standard

        policy = standard.RetryPolicy(
            retry_checker=_Conditions(
                standard.MaxAttemptsChecker(max_attempts),
                standard.OrRetryChecker([standard.TransientRetryableChecker(),
                                         standard.ThrottledRetryableChecker(),
                                         standard.ThrottlingStatusCodeChecker()])),
            retry_backoff=standard.ExponentialBackoff(
                throttling_detector=standard.ThrottlingErrorDetector(
                    standard.RetryEventAdapter())))
        base, path_style = endpoint(region, self.environ)
        url = object_url(base, path_style, obj)
        attempt = 0
        while True:
            attempt += 1
            if self.cancelled():
                raise errors.SetupError(f"submit directory {obj.url}: download cancelled")
            response = error = caught = None
            try:
                response = http.send(self._signed(url, credentials, region, obj))
                if 200 <= response.status_code < 300:
                    return self._save(response, target, obj), None, attempt
                body = response.raw.read(ERROR_BODY_LIMIT, decode_content=True) or b""
                response.raw.release_conn()
                error = parse_error(response.status_code, body, dict(response.headers))
            except (BotoConnectionError, HTTPClientError) as exc:
                caught = exc
            context = standard.RetryContext(
                attempt_number=attempt, http_response=response, caught_exception=caught,
                parsed_response={"Error": {"Code": error.code, "Message": error.message}}
                if error else None)
            if not policy.should_retry(context):
                if caught is not None:
                    raise errors.SetupError(
                        f"submit directory {obj.url}: network error reaching {base}"
                        + (f" after {attempt} attempts" if attempt > 1 else "")
                        + f": {caught}") from None
                return 0, error, attempt
            self.sleep(policy.compute_retry_delay(context))

    def _signed(self, url: str, credentials: Any, region: str, obj: S3Object) -> Any:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method="GET", url=url)
        S3SigV4Auth(self._frozen(credentials, obj), "s3", region).add_auth(request)
        prepared = request.prepare()
        prepared.stream_output = True
        return prepared

    def _save(self, response: Any, target: str, obj: S3Object) -> int:
        """The body into `target`, chunk by chunk; a cut connection is an HTTPClientError."""
        from botocore.exceptions import HTTPClientError
        from urllib3.exceptions import HTTPError

        size = 0
        try:
            with open(target, "wb") as out:
                while chunk := response.raw.read(CHUNK, decode_content=False):
                    out.write(chunk)
                    size += len(chunk)
                    if self.cancelled():
                        raise errors.SetupError(
                            f"submit directory {obj.url}: download cancelled")
        except HTTPError as exc:  # cut mid-body: retried as the standard mode does
            raise HTTPClientError(error=exc) from None
        except OSError as exc:
            raise errors.SetupError(f"submit directory {obj.url}: cannot write {target}: "
                                    f"{exc.strerror}") from None
        finally:
            response.raw.release_conn()
        return size


class _Conditions:
    """Retry when under max attempts and when one of the conditions says so (botocore's AND)."""

    def __init__(self, max_attempts: Any, conditions: Any) -> None:
        self.max_attempts = max_attempts
        self.conditions = conditions

    def is_retryable(self, context: Any) -> bool:
        return bool(self.max_attempts.is_retryable(context)
                    and self.conditions.is_retryable(context))


class tls_verify:
    """What to verify S3's certificate with, as a path; a temporary file when it is ours.

    botocore's own order first (AWS_CA_BUNDLE, `ca_bundle` in the config
    file), then the system's bundle, then the CA certificates shipped in the
    binary (botocore's), for images that have none.
    """

    def __init__(self, session: Any, environ: dict[str, str] | os._Environ[str],
                 binary: str | None) -> None:
        self.session = session
        self.environ = environ
        self.binary = binary
        self.temporary: str | None = None

    def __enter__(self) -> str | bool:
        configured = self.session.get_config_variable("ca_bundle")
        if configured:
            return str(configured)
        import ssl

        paths = ssl.get_default_verify_paths()
        for candidate in (paths.cafile, paths.openssl_cafile, *SYSTEM_CA_BUNDLES):
            if candidate and os.path.isfile(candidate):
                return candidate
        pem = tls.bundled_ca_certificates(self.binary)
        if pem is None:
            return True
        import tempfile

        fd, self.temporary = tempfile.mkstemp(prefix="sm-entry-cacert-", suffix=".pem")
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return self.temporary

    def __exit__(self, *exc: object) -> None:
        if self.temporary:
            os.remove(self.temporary)


def _quiet_libraries() -> None:
    """botocore and urllib3 log through `logging`, whose last resort would print to stderr."""
    for name in ("botocore", "urllib3"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
