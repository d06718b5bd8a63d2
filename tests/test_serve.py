"""`tlcv serve`: the HTTP API through FastAPI's TestClient (good images, every kind of bad
upload, concurrent requests) and the page in a real headless Chromium."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import DATA, ROOT
from tlcv.serving.app import create_app

OFFICE = DATA / "office31" / "amazon"


def _mug() -> Path:
    return sorted((OFFICE / "mug").iterdir())[0]


@pytest.fixture(scope="module")
def client(office_run):
    return TestClient(create_app(office_run.path, max_upload_mb=0.5))


def _post(client, route: str, name: str, data: bytes, kind: str = "image/jpeg"):
    return client.post(route, files={"file": (name, data, kind)})


def test_metadata_health_and_a_page_without_external_resources(client, office_run):
    assert client.get("/healthz").json() == {"status": "ok"}
    meta = client.get("/metadata").json()
    assert meta["classes"] == office_run.classes and meta["fingerprint"]
    assert meta["tlcv_version"] and meta["task"] == "classification"
    page = client.get("/").text
    assert "<script>" in page and "http://" not in page and "https://" not in page
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/predict", "/explain"}


def test_predict_and_explain_a_real_image(client):
    answer = _post(client, "/predict", "mug.jpg", _mug().read_bytes())
    assert answer.status_code == 200
    assert answer.json()["top"][0]["label"] == "mug"
    picture = _post(client, "/explain", "mug.jpg", _mug().read_bytes())
    assert picture.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(picture.content)).size[0] > 100


def test_content_is_sniffed_not_trusted(client):
    """A PNG sent as notes.txt with a text type is still read as the PNG it is."""
    buf = io.BytesIO()
    Image.open(_mug()).save(buf, format="PNG")
    answer = _post(client, "/predict", "notes.txt", buf.getvalue(), "text/plain")
    assert answer.status_code == 200


def _bomb() -> bytes:
    """A small PNG that declares 30000 x 30000 pixels."""
    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("empty.jpg", b"", 400),
        ("text.jpg", b"hello, not an image", 415),
        ("truncated.jpg", _mug().read_bytes()[:300] if OFFICE.is_dir() else b"x", 415),
        ("bomb.png", None, 413),
        ("huge.jpg", b"\xff" * 600_000, 413),
    ],
)
def test_bad_uploads_get_a_4xx_with_a_message(client, name, data, status):
    answer = _post(client, "/predict", name, _bomb() if data is None else data)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]
    assert client.get("/healthz").status_code == 200  # the server is still there


def test_a_request_without_a_file_or_with_a_wrong_target(client):
    assert client.post("/predict").status_code == 422
    wrong = _post(client, "/explain?target=zebra", "mug.jpg", _mug().read_bytes())
    assert wrong.status_code == 422 and "not one of the run's classes" in wrong.json()["detail"]


def test_concurrent_requests(client):
    data = _mug().read_bytes()

    def one(i: int) -> int:
        route = "/explain" if i % 4 == 0 else "/predict"
        return _post(client, route, f"{i}.jpg", data if i % 5 else b"junk").status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(24)))
    assert codes.count(415) == 5 and all(c in (200, 415) for c in codes)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser():
    driver = shutil.which("chromedriver")
    binary = next(
        (shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None
    )
    if not driver or not binary:
        if os.environ.get("TLCV_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are required (.ci/run installs them)")
        pytest.skip("no chromium/chromedriver on this machine")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1100,800")
    return webdriver.Chrome(service=Service(driver), options=options)


@contextlib.contextmanager
def served(run, *extra):
    """`tlcv serve RUN` in a child process on a free port; yields the page's URL."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "tlcv.cli", "serve", str(run), "--port", str(port), *extra]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=30)


def upload_in_browser(url: str, image: Path, screenshot: Path) -> list[str]:
    """Open the page, upload ``image``, wait for the answer and the picture; the bars' labels."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(url)
        browser.find_element(By.ID, "file").send_keys(str(image))
        wait = WebDriverWait(browser, 120)
        wait.until(
            lambda b: b.execute_script(
                "const i = document.getElementById('overlay'); return !i.hidden && i.complete && "
                "i.naturalWidth > 0"
            )
        )
        assert not browser.find_element(By.ID, "error").text
        labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#bars .bar .label")]
        browser.save_screenshot(str(screenshot))
        assert Image.open(screenshot).size[0] > 500
        return labels
    finally:
        browser.quit()


def test_the_page_in_a_headless_browser(office_run, tmp_path):
    """Upload a real image through the page: the top class shown and the overlay rendered."""
    with served(office_run.path) as url:
        labels = upload_in_browser(url, _mug(), tmp_path / "page.png")
    assert labels[0] == "mug"


def test_an_upload_over_the_cap_is_refused_before_its_body_is_read(client):
    declared = client.post(
        "/predict",
        content=b"x" * 2_000_000,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert declared.status_code == 413
    assert declared.json()["detail"] == "upload over the 0.5 MB limit"
    sent = []

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            sent.append(1)
            yield b"y" * 65536

    streamed = client.post(
        "/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert streamed.status_code == 413 and "0.5 MB" in streamed.json()["detail"]
    assert client.get("/healthz").status_code == 200


def _raw(port: int, data: bytes, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(data)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within ``seconds``, and what it sent."""
    sock.settimeout(seconds)
    got = b""
    try:
        while chunk := sock.recv(4096):
            got += chunk
        return True, got
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        return True, got


def test_slow_clients_and_too_many_connections_do_not_hold_the_server(office_run):
    """Real uvicorn: headers dribbled a byte at a time are cut off, a stalled body gets 408,
    connections beyond --max-connections get 503, and the server answers throughout."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "tlcv.cli", "serve", str(office_run.path), "--port",
               str(port), "--header-timeout", "1", "--body-timeout", "1",
               "--max-connections", "4"]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(0.3)
        slow = _raw(port, b"G")
        for byte in b"ET /healthz HTTP/1.1\r\n":  # a byte every 0.1 s: past 1 s, cut off
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        assert _closed_within(slow, 3)[0]
        head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b")  # fmt: skip
        _, answer = _closed_within(_raw(port, head), 5)
        assert b" 408 " in answer.split(b"\r\n")[0], answer[:200]
        idle = [_raw(port, b"GET /heal") for _ in range(4)]  # headers never finished
        busy = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        _, answer = _closed_within(busy, 3)
        assert b" 503 " in answer.split(b"\r\n")[0], answer[:200]
        for sock in idle:
            assert _closed_within(sock, 3)[0]  # and the header timeout frees them
        ok = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b" 200 " in _closed_within(ok, 5)[1].split(b"\r\n")[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
