"""deploy/nginx/triage.conf and upstream.conf as shipped, in front of two real `triage web` processes on one
PostgreSQL schema, with a throwaway self-signed certificate: a login over https gets a Secure
cookie (the proxy's X-Forwarded-Proto believed from loopback), pages and a CSRF-checked POST
work whichever process nginx picks, and plain http is sent to https. Skips where Debian's nginx
is not installed (.ci/install-system-packages installs it)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.test_web_stateless import CSRF_FIELD, PASSWORD, Workbench, two_workbenches  # noqa: F401 - a fixture

pytestmark = pytest.mark.postgres

SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "nginx"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
OPENSSL = shutil.which("openssl")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def site_config(shipped: str, http_port: int, https_port: int, cert: Path, key: Path) -> str:
    """The shipped server blocks with this test's ports and certificate; nothing else changed."""
    text = re.sub(r"\n    listen \[::\][^\n]*", "", shipped)
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    text = re.sub(r"listen 443 ssl http2;[^\n]*", f"listen 127.0.0.1:{https_port} ssl http2;", text)
    text = re.sub(r"ssl_certificate +\S+;", f"ssl_certificate {cert};", text)
    text = re.sub(r"ssl_certificate_key +\S+;", f"ssl_certificate_key {key};", text)
    assert text.count(f"127.0.0.1:{https_port}") == 1 and str(key) in text, text
    return text


def upstream_config(shipped: str, upstreams: list[str]) -> str:
    """The shipped upstream block with this test's two web processes for its servers."""
    servers = "".join(f"\n    server {address.removeprefix('http://')} max_fails=3 fail_timeout=10s;"
                      for address in upstreams)
    text = re.sub(r"\n    server [^\n]*", "", shipped)
    return text.replace("upstream triage_web {", "upstream triage_web {" + servers, 1)


def _wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {process.stderr.read() if process.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nginx does not listen on {port}")


@pytest.fixture
def proxy(two_workbenches: tuple[str, str, str], tmp_path: Path) -> Iterator[tuple[str, str, ssl.SSLContext]]:  # noqa: F811
    """(https base URL, http base URL, a TLS context trusting the throwaway certificate)."""
    if NGINX is None or OPENSSL is None:
        pytest.skip("nginx or openssl not installed: run .ci/install-system-packages")
    a_url, b_url, _ = two_workbenches
    folder = tmp_path / "nginx"
    (folder / "logs").mkdir(parents=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=desk.example.org", "-addext",
                    "subjectAltName=DNS:desk.example.org,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    http_port, https_port = _free_port(), _free_port()
    (folder / "triage.conf").write_text(
        site_config((SHIPPED / "triage.conf").read_text(encoding="utf-8"), http_port, https_port, cert, key),
        encoding="utf-8")
    (folder / "upstream.conf").write_text(
        upstream_config((SHIPPED / "upstream.conf").read_text(encoding="utf-8"), [a_url, b_url]), encoding="utf-8")
    (folder / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # its workers write temp files in root's tmp_path
        + f"pid {folder}/nginx.pid;\nerror_log {folder}/logs/error.log warn;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {folder}/body;\n  proxy_temp_path {folder}/proxy;\n"
        f"  include {folder}/upstream.conf;\n  include {folder}/triage.conf;\n}}\n", encoding="utf-8")
    test = subprocess.run([NGINX, "-t", "-p", str(folder), "-c", str(folder / "nginx.conf")],
                          check=False, capture_output=True, text=True, timeout=30)
    assert test.returncode == 0, test.stderr
    process = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_port(https_port, process)
        yield f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", ssl.create_default_context(
            cafile=str(cert))
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful shutdown
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_a_login_through_the_tls_proxy_gets_a_secure_cookie_and_works_on_both_processes(
        proxy: tuple[str, str, ssl.SSLContext], two_workbenches: tuple[str, str, str]) -> None:  # noqa: F811
    https, http, context = proxy
    reference = two_workbenches[2]
    with httpx2.Client(base_url=http) as plain:
        moved = plain.get("/queue", follow_redirects=False)
        assert moved.status_code == 301 and moved.headers["location"].startswith("https://")
    with httpx2.Client(base_url=https, verify=context) as client:
        form = client.get("/login")
        assert form.status_code == 200 and "max-age=31536000" in form.headers["strict-transport-security"]
        assert "; secure" in form.headers["set-cookie"].lower()  # the login's double-submit cookie too
        token = CSRF_FIELD.search(form.text)
        assert token
        done = client.post("/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token[1]},
                           follow_redirects=False)
        assert done.status_code == 303, done.text[:300]
        cookie = done.headers["set-cookie"].lower()
        assert cookie.startswith("triage_session=") and "; secure" in cookie and "; httponly" in cookie
        # round robin over both processes: every page works on either
        pages = [client.get("/queue") for _ in range(4)]
        assert all(page.status_code == 200 and reference in page.text for page in pages)
        csrf = CSRF_FIELD.search(pages[-1].text)
        assert csrf
        approved = client.post(f"/queue/{reference}/approve", data={"csrf_token": csrf[1]}, follow_redirects=False)
        assert approved.status_code == 303 and approved.headers["location"] == "/queue"
        assert reference not in client.get("/queue").text
