"""``POST /v3/ec2tokens``: an EC2/S3 front end forwards a request botocore signed (v2, v4 in the
Authorization header, v4 presigned query) with an OS-EC2 credential; our keystone recomputes the
signature from the stored secret and answers a token on the credential's project, as Keystone does."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.e2e.test_glance_support import client_for, tenant
from tests.support.controller import Controller
from tests.support.peers import need

K = "/api/s/identity/v3"


def _botocore() -> Any:
    try:
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
    except ImportError:
        need(False, "needs botocore (boto3: scripts/setup-peers.d/cloud.sh)")
    return botocore


def _forwarded(req: Any, body: bytes = b"") -> dict[str, Any]:
    """What an EC2 front end hands keystone about a request it received (as ec2-api does)."""
    url = urlsplit(req.url)
    params = dict(parse_qsl(url.query, keep_blank_values=True))
    params.update(req.params or {})
    headers = {k: v for k, v in req.headers.items()}
    headers.setdefault("Host", url.netloc)
    auth = headers.get("Authorization", "")
    signature = (auth.split("Signature=")[1] if "Signature=" in auth
                 else params.pop("X-Amz-Signature", None) or params.pop("Signature", None))
    return {"access": None, "signature": signature, "host": url.netloc, "verb": req.method, "path": url.path or "/",
            "params": params, "headers": headers, "body_hash": hashlib.sha256(body).hexdigest()}


def _ec2token(ctl: Controller, creds: dict[str, Any]) -> httpx.Response:
    return httpx.post(ctl.url + K + "/ec2tokens", json={"credentials": creds}, timeout=30)


def test_ec2tokens_accepts_botocore_signatures_and_refuses_forgeries(controller: Controller) -> None:
    bc = _botocore()
    pid, tok = tenant(controller)
    with client_for(controller, tok) as m:
        me = m.get(f"{K}/auth/tokens", headers={"X-Subject-Token": tok}).json()["token"]["user"]["id"]
        c = m.post(f"{K}/users/{me}/credentials/OS-EC2", json={"tenant_id": pid}).json()["credential"]
    keys = bc.credentials.Credentials(c["access"], c["secret"])
    url = "http://ec2.example.test:8788/services/Cloud/"

    signed: dict[str, dict[str, Any]] = {}
    v2 = bc.awsrequest.AWSRequest(method="GET", url=url, params={"Action": "DescribeRegions", "Version": "2016-11-15"})
    bc.auth.SigV2Auth(keys).add_auth(v2)
    signed["v2"] = _forwarded(v2)
    v4 = bc.awsrequest.AWSRequest(method="GET", url=url + "?Action=DescribeInstances&Version=2016-11-15")
    bc.auth.SigV4Auth(keys, "ec2", "RegionOne").add_auth(v4)
    signed["v4"] = _forwarded(v4)
    v4q = bc.awsrequest.AWSRequest(method="GET", url=url + "?Action=DescribeImages")
    bc.auth.SigV4QueryAuth(keys, "ec2", "RegionOne", expires=300).add_auth(v4q)
    v4q.prepare()  # the presigner puts its X-Amz-* parameters into the URL
    signed["v4 query"] = _forwarded(v4q)
    body = b"Action=RunInstances&Version=2016-11-15"
    v4p = bc.awsrequest.AWSRequest(method="POST", url=url, data=body,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    bc.auth.SigV4Auth(keys, "ec2", "RegionOne").add_auth(v4p)
    signed["v4 post"] = _forwarded(v4p, body)

    for kind, creds in signed.items():
        r = _ec2token(controller, {**creds, "access": c["access"]})
        assert r.status_code == 200, (kind, r.text)
        t = r.json()["token"]
        assert t["project"]["id"] == pid and t["methods"] == ["ec2credential"] and t["catalog"], kind
        # the token works like any other
        assert client_for(controller, r.headers["x-subject-token"]).get(f"{K}/users/{me}").status_code == 200

    good = {**signed["v4"], "access": c["access"]}
    tampered = {**good, "path": "/services/Admin/"}
    assert _ec2token(controller, tampered).status_code == 401
    assert _ec2token(controller, {**good, "signature": "0" * 64}).status_code == 401
    assert _ec2token(controller, {**good, "access": "no-such-access-key"}).status_code == 401
    changed = {**signed["v2"], "access": c["access"], "params": {**signed["v2"]["params"], "Version": "2012"}}
    assert _ec2token(controller, changed).status_code == 401
    # a correctly signed request from an hour ago is too old (Keystone's auth_ttl is 15 minutes)
    with mock.patch("botocore.auth.get_current_datetime",
                    return_value=datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)):
        old = bc.awsrequest.AWSRequest(method="GET", url=url + "?Action=DescribeInstances")
        bc.auth.SigV4Auth(keys, "ec2", "RegionOne").add_auth(old)
    r = _ec2token(controller, {**_forwarded(old), "access": c["access"]})
    assert r.status_code == 401 and "expired" in r.text, r.text
    assert _ec2token(controller, {**good, "params": "not-a-dict"}).status_code == 400
    assert httpx.post(controller.url + K + "/ec2tokens", json={}, timeout=30).status_code == 400
