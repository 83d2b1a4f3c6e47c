"""S3 URLs, endpoints and error answers: each S3 answer becomes the line its cause deserves."""

import pytest

from supervisor import errors
from supervisor.train import awsconfig, s3code
from supervisor.train.s3code import S3Error, S3Object

OBJ = S3Object("my-bucket", "job/source/sourcedir.tar.gz")


@pytest.mark.parametrize("url", ["s3://bucket", "s3://bucket/", "s3:///key", "s3://b/dir/"])
def test_url_without_an_object_is_refused(url):
    with pytest.raises(errors.SetupError, match="not an S3 object URL"):
        s3code.parse_url(url)


def test_url_keeps_the_key_whole():
    assert S3Object("b", "a/b c/d.tar.gz") == s3code.parse_url("s3://b/a/b c/d.tar.gz")


@pytest.mark.parametrize(("region", "environ", "expected"), [
    ("eu-west-3", {}, ("https://s3.eu-west-3.amazonaws.com", False)),
    ("cn-north-1", {}, ("https://s3.cn-north-1.amazonaws.com.cn", False)),
    ("eu-west-3", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000/"}, ("http://127.0.0.1:9000", True)),
    ("eu-west-3", {"AWS_ENDPOINT_URL": "http://a", "AWS_ENDPOINT_URL_S3": "http://b"},
     ("http://b", True)),
])
def test_endpoint(region, environ, expected):
    assert expected == s3code.endpoint(region, environ)


def test_object_url_is_virtual_hosted_unless_path_style_or_dotted():
    base = "https://s3.eu-west-3.amazonaws.com"
    assert (f"https://my-bucket.s3.eu-west-3.amazonaws.com/{OBJ.key}"
            == s3code.object_url(base, False, OBJ))
    assert f"{base}/my-bucket/{OBJ.key}" == s3code.object_url(base, True, OBJ)
    assert f"{base}/my.bucket/a%20b%2Bc" == s3code.object_url(base, False, S3Object("my.bucket", "a b+c"))


def test_error_body_is_read_without_an_xml_parser():
    body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            b"<Message>Access &amp; more denied</Message><RequestId>1</RequestId></Error>")
    assert S3Error(403, "AccessDenied", "Access & more denied") == s3code.parse_error(403, body)
    assert S3Error(404, "", "") == s3code.parse_error(404, b"")
    redirect = s3code.parse_error(301, b"<Error><Code>PermanentRedirect</Code></Error>",
                                  {"x-amz-bucket-region": "eu-west-3"})
    assert "eu-west-3" == redirect.bucket_region


@pytest.mark.parametrize(("error", "expected"), [
    (S3Error(404, "NoSuchKey", "The specified key does not exist."),
     "no such key 'job/source/sourcedir.tar.gz' in bucket 'my-bucket' (NoSuchKey: The specified"),
    (S3Error(404, "", ""), "no such key 'job/source/sourcedir.tar.gz' in bucket 'my-bucket' (HTTP 404)"),
    (S3Error(404, "NoSuchBucket", "x"), "no such bucket 'my-bucket' (NoSuchBucket: x)"),
    (S3Error(403, "AccessDenied", "Access Denied"),
     "access denied to key 'job/source/sourcedir.tar.gz' in bucket 'my-bucket' for the "
     "credentials from env (AccessDenied: Access Denied)"),
    (S3Error(403, "", ""), "access denied to key"),
    (S3Error(400, "ExpiredToken", "The provided token has expired."),
     "S3 rejected the credentials from env as expired or invalid (ExpiredToken: "),
    (S3Error(403, "SignatureDoesNotMatch", "x"), "S3 rejected the credentials from env"),
    (S3Error(500, "InternalError", "x"), "S3 answered HTTP 500 after 3 attempts (InternalError: x)"),
])
def test_each_error_is_described_by_its_cause(error, expected):
    line = s3code.describe_failure(OBJ, error, "env", 3)
    assert line.startswith(f"submit directory {OBJ.url}: {expected}"), line


@pytest.mark.parametrize(("text", "environ", "expected"), [
    ("[default]\nregion = eu-west-3\n", {}, "eu-west-3"),
    ("[default]\nregion = eu-west-3\n[profile dev]\nregion = ap-south-1\n",
     {"AWS_PROFILE": "dev"}, "ap-south-1"),
    ("[profile dev]\nregion = ap-south-1\n", {}, None),
    ("[default]\noutput = json\n", {}, None),
    ("not an ini file", {}, None),
])
def test_config_file_region_as_botocore_reads_it(tmp_path, text, environ, expected):
    config = tmp_path / "config"
    config.write_text(text)
    assert expected == awsconfig.config_file_region({"AWS_CONFIG_FILE": str(config), **environ})


def test_config_file_defaults_to_home(tmp_path):
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text("[default]\nregion = us-west-2\n")
    assert "us-west-2" == awsconfig.config_file_region({"HOME": str(tmp_path)})
    assert None is awsconfig.config_file_region({"HOME": str(tmp_path / "nowhere")})
