"""`meshgate ca init` and `meshgate ca issue`: the mesh CA on the command line, checked with openssl.

An issued certificate must be an X.509-SVID as Istio's are (one URI SAN, not a CA, digitalSignature,
serverAuth and clientAuth), chain to the root, and come with private files; a CA key others can read
and an illegal service account are refused with a message that says what and where.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from conftest import BIN


def meshgate(*args: str, umask: int | None = None) -> subprocess.CompletedProcess:
    if not BIN.exists():
        pytest.fail(f"no meshgate binary at {BIN}: build it (swift build) or set MESHGATE_BIN")
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60, preexec_fn=preexec)


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def init_and_issue(tmp_path: Path, *issue_args: str, trust_domain: str | None = None, umask: int | None = None) -> tuple[Path, Path]:
    ca, out = tmp_path / "ca", tmp_path / "reviews"
    init = ["ca", "init", "--dir", str(ca)] + (["--trust-domain", trust_domain] if trust_domain else [])
    result = meshgate(*init, umask=umask)
    assert result.returncode == 0, result.stderr
    result = meshgate(
        "ca", "issue", "--dir", str(ca), "--namespace", "default", "--service-account", "reviews", "--out", str(out), *issue_args,
        umask=umask,
    )
    assert result.returncode == 0, result.stderr
    assert "spiffe://" in result.stdout
    return ca, out


def test_issued_certificate_is_an_x509_svid(tmp_path: Path):
    ca, out = init_and_issue(tmp_path)
    text = openssl("x509", "-in", str(out / "cert-chain.pem"), "-text", "-noout").stdout
    assert re.findall(r"URI:\S+", text) == ["URI:spiffe://cluster.local/ns/default/sa/reviews"]
    assert "DNS:" not in text and "IP Address:" not in text
    assert re.search(r"X509v3 Basic Constraints: critical\s+CA:FALSE", text)
    assert re.search(r"X509v3 Key Usage: critical\s+Digital Signature\n", text)
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "Public-Key: (256 bit)" in text and "prime256v1" in text
    assert re.search(r"Issuer: O\s?=\s?cluster.local", text)

    verify = openssl("verify", "-CAfile", str(out / "root-cert.pem"), str(out / "cert-chain.pem"))
    assert verify.returncode == 0 and verify.stdout.strip().endswith(": OK"), verify.stdout + verify.stderr
    for purpose in ("sslserver", "sslclient"):
        check = openssl("verify", "-purpose", purpose, "-CAfile", str(ca / "root-cert.pem"), str(out / "cert-chain.pem"))
        assert check.returncode == 0, f"{purpose}: {check.stdout}{check.stderr}"

    # The chain is the leaf then the root; root-cert.pem beside it is the CA's own.
    chain = (out / "cert-chain.pem").read_text()
    assert chain.count("BEGIN CERTIFICATE") == 2
    assert chain.endswith((ca / "root-cert.pem").read_text())
    assert (out / "root-cert.pem").read_text() == (ca / "root-cert.pem").read_text()

    # key.pem is the certificate's key.
    certificate_key = openssl("x509", "-in", str(out / "cert-chain.pem"), "-pubkey", "-noout").stdout
    private_key = openssl("pkey", "-in", str(out / "key.pem"), "-pubout").stdout
    assert certificate_key and certificate_key == private_key


def test_root_is_a_ten_year_ca(tmp_path: Path):
    ca, _ = init_and_issue(tmp_path, trust_domain="mesh.example.org")
    text = openssl("x509", "-in", str(ca / "root-cert.pem"), "-text", "-noout").stdout
    assert re.search(r"X509v3 Basic Constraints: critical\s+CA:TRUE", text)
    assert re.search(r"X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign", text)
    assert re.search(r"Subject: O\s?=\s?mesh.example.org", text)
    start, end = validity(ca / "root-cert.pem")
    assert (end - start).days == 3650
    leaf = openssl("x509", "-in", str(tmp_path / "reviews" / "cert-chain.pem"), "-text", "-noout").stdout
    assert re.findall(r"URI:\S+", leaf) == ["URI:spiffe://mesh.example.org/ns/default/sa/reviews"]


def validity(path: Path) -> tuple[datetime, datetime]:
    dates = openssl("x509", "-in", str(path), "-noout", "-startdate", "-enddate").stdout
    start = re.search(r"notBefore=(.+)", dates).group(1).strip()
    end = re.search(r"notAfter=(.+)", dates).group(1).strip()
    return tuple(datetime.strptime(re.sub(r"\s+", " ", d), "%b %d %H:%M:%S %Y %Z") for d in (start, end))


@pytest.mark.parametrize("ttl,seconds", [("24h", 86400), ("90m", 5400), ("3600s", 3600)])
def test_ttl_sets_the_lifetime(tmp_path: Path, ttl: str, seconds: int):
    _, out = init_and_issue(tmp_path, "--ttl", ttl)
    start, end = validity(out / "cert-chain.pem")
    assert (end - start).total_seconds() == seconds


def test_private_files_whatever_the_umask(tmp_path: Path):
    ca, out = init_and_issue(tmp_path, umask=0)
    assert mode(ca) == 0o700
    assert mode(ca / "root-key.pem") == 0o600
    assert mode(out / "key.pem") == 0o600


def test_a_ca_key_others_can_read_is_refused(tmp_path: Path):
    ca, _ = init_and_issue(tmp_path)
    (ca / "root-key.pem").chmod(0o644)
    result = meshgate("ca", "issue", "--dir", str(ca), "--namespace", "default", "--service-account", "ratings", "--out", str(tmp_path / "ratings"))
    assert result.returncode != 0
    assert f"{ca / 'root-key.pem'} has mode 0644" in result.stderr, result.stderr
    assert not (tmp_path / "ratings").exists()


@pytest.mark.parametrize(
    "flag,value,field",
    [("--service-account", "Bad_SA!", "service account 'Bad_SA!'"), ("--namespace", "my_ns", "namespace 'my_ns'"), ("--namespace", "-ns", "namespace '-ns'")],
)
def test_illegal_identity_is_refused(tmp_path: Path, flag: str, value: str, field: str):
    ca, _ = init_and_issue(tmp_path)
    args = {"--namespace": "default", "--service-account": "ratings", flag: value}
    # FLAG=VALUE, so that a value starting with '-' is not read as an option.
    result = meshgate("ca", "issue", "--dir", str(ca), *[f"{name}={text}" for name, text in args.items()], "--out", str(tmp_path / "bad"))
    assert result.returncode != 0
    assert field in result.stderr, result.stderr
    assert not (tmp_path / "bad").exists()


def test_bad_trust_domain_ttl_and_second_init_are_refused(tmp_path: Path):
    result = meshgate("ca", "init", "--dir", str(tmp_path / "x"), "--trust-domain", "Cluster_Local")
    assert result.returncode != 0 and "trust domain 'Cluster_Local'" in result.stderr
    ca, _ = init_and_issue(tmp_path)
    again = meshgate("ca", "init", "--dir", str(ca))
    assert again.returncode != 0 and "already exists" in again.stderr
    for ttl in ("1d", "0s", "2161h"):
        result = meshgate("ca", "issue", "--dir", str(ca), "--namespace", "default", "--service-account", "reviews", "--out", str(tmp_path / "t"), "--ttl", ttl)
        assert result.returncode != 0 and "ttl" in result.stderr.lower(), (ttl, result.stderr)
