"""The studio (python -m dds_jax.studio): upload checks, the JSON API, and a real headless Chromium session
that paints a label with the mouse, trains the segmenter, runs DDS on 2 seeds and sees the results.

Needs the ``studio`` extra (Flask, Playwright's Python driver) and Debian's chromium (``.ci/run`` installs
both; Playwright never downloads a browser here). Set DDS_STUDIO_SCREENSHOT=docs/studio.png to refresh
the README's screenshot."""
import io
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import numpy as np
import pytest
from PIL import Image

from demo_utils import DEMO, DEMO_SIZE, ROOT

from dds_jax.segmentation import labels as label_io
from dds_jax.studio import uploads     # no Flask needed: the upload checks run without the extra


def need_flask():
    pytest.importorskip("flask", reason="the studio extra is not installed (pip install -e .[studio])")

S = DEMO_SIZE                        # the demo models' images
SIZE = (S, S)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def png_bytes(array, mode=None, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(array) if mode is None else Image.fromarray(array, mode)
    im.save(buf, format=fmt)
    return buf.getvalue()


def hair_label(color=(255, 0, 0)) -> np.ndarray:
    """A label of the top rows (the demo faces' hair) in ``color`` on black."""
    a = np.zeros(SIZE + (3,), np.uint8)
    a[:9] = color
    return a


# --------------------------------------------------------------------------------------------------
# Upload checks (pure function)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data, expected", [
    (b"", "the file is empty"),
    (b"this is not an image", "not an image"),
    (png_bytes(np.zeros((S, S, 3), np.uint8), fmt="JPEG"), "a JPEG image; label masks must be PNG"),
    (png_bytes(np.zeros((16, S, 3), np.uint8)), f"the mask is {S}x16 pixels, the images are {S}x{S}"),
    (png_bytes(np.zeros((S, S), np.uint16)), "image mode I;16 is not supported"),
], ids=["empty", "not_image", "jpeg", "wrong_size", "mode_16bit"])
def test_upload_refused_with_message(data, expected):
    with pytest.raises(uploads.UploadError, match="^mask.png: ") as e:
        uploads.read_upload_image(data, "mask.png", SIZE)
    assert expected in str(e.value)


def test_upload_too_big():
    with pytest.raises(uploads.UploadError, match="too big"):
        uploads.read_upload_image(b"\x89PNG" + b"0" * 2000, "big.png", SIZE, max_bytes=1000)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_upload_accepts_8bit_modes(mode):
    im = Image.fromarray(hair_label((255, 255, 255))).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    rgba = uploads.read_upload_image(buf.getvalue(), "m.png", SIZE)
    assert rgba.shape == (S, S, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[:9, :, 0], 255)
    np.testing.assert_array_equal(rgba[9:, :, :3], 0)


# --------------------------------------------------------------------------------------------------
# The JSON API (Flask test client, the demo models)
# --------------------------------------------------------------------------------------------------
def demo_studio_config():
    import importlib.util
    spec = importlib.util.spec_from_file_location("demo_config", DEMO)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config()


TOKEN = "test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def api_studio(tmp_path_factory):
    need_flask()
    from dds_jax.studio.engine import Studio
    work = tmp_path_factory.mktemp("studio_api")
    c = demo_studio_config()
    c.output_dir = str(work / "cli_runs" / "demo")
    studio = Studio(c, work / "studio")
    studio.sample("0-1")                                 # seeds to label (synchronously)
    return studio


@pytest.fixture(scope="module")
def client(api_studio):
    """Flask's test client, let in as a browser is: the token URL sets the cookie it then carries."""
    from dds_jax.studio.app import create_app
    client = create_app(api_studio, TOKEN).test_client()
    assert client.get(f"/?token={TOKEN}").status_code == 302
    return client, api_studio


def post_label(client, data, seed="0", parts="hair", name="label.png"):
    return client.post("/api/label", data={"seed": seed, "parts": parts, "file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_api_refuses_bad_uploads(client):
    client, studio = client
    r = post_label(client, b"GIF89a not really")
    assert r.status_code == 400 and "label.png: not an image" in r.get_json()["error"]
    r = post_label(client, png_bytes(np.zeros((8, 8, 3), np.uint8)))
    assert r.status_code == 400 and f"8x8 pixels, the images are {S}x{S}" in r.get_json()["error"]
    # a colour that is no part's (hair is PALETTE[0] = red): read_label's message, naming the upload
    r = post_label(client, png_bytes(hair_label((0, 0, 255))))
    assert r.status_code == 400
    msg = r.get_json()["error"]
    assert msg.startswith(f"label.png: 1 colour(s) not in the colour map: #0000ff ({9 * S} px)"), msg
    r = post_label(client, png_bytes(np.zeros((S, S, 3), np.uint8)))
    assert r.status_code == 400 and "no foreground pixel" in r.get_json()["error"]
    r = post_label(client, png_bytes(hair_label()), seed="7")
    assert r.status_code == 400 and "seed 7 has no sample" in r.get_json()["error"]
    r = post_label(client, png_bytes(hair_label()), parts="background")
    assert r.status_code == 400 and "'background' is class 0" in r.get_json()["error"]
    r = client.post("/api/label", data={"seed": "0", "parts": "hair"}, content_type="multipart/form-data")
    assert r.status_code == 400 and "no file" in r.get_json()["error"]
    r = client.post("/api/label", data={"seed": "0", "parts": "hair",
                                         "file": (io.BytesIO(b"0" * (uploads.MAX_UPLOAD_BYTES + 70000)), "x.png")},
                    content_type="multipart/form-data")
    assert r.status_code == 413 and "too big" in r.get_json()["error"]
    assert not list((studio.labels_dir).glob("*.png")), "a refused upload must leave no label behind"


def test_api_saves_a_good_label(client):
    client, studio = client
    r = post_label(client, png_bytes(hair_label()), seed="1")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["pixels"] == {"hair": 9 * S}
    classes = np.asarray(body["classes"])
    assert classes.shape == SIZE and (classes[:9] == 1).all() and (classes[9:] == 0).all()
    table = label_io.color_table([["hair"]], label_io.parse_colors({"hair": "#ff0000"}))
    np.testing.assert_array_equal(label_io.read_label(studio.labels_dir / "seed_1.png", table, SIZE), classes)
    (studio.labels_dir / "seed_1.png").unlink()


def test_api_refuses_bad_requests(client):
    client, studio = client
    for path, body, expected in [
        ("/api/sample", {"seeds": "7-3"}, "end before start"),
        ("/api/dds", {"seeds": "0", "iterations": 0}, "iterations: 0 is not in"),
        ("/api/train", {"parts": "", "epochs": 3}, "no parts given"),
    ]:
        r = client.post(path, json=body)
        assert r.status_code == 400 and expected in r.get_json()["error"], (path, r.get_json())
    assert client.get("/files/0/../../etc/passwd").status_code == 404
    assert client.get("/api/run/9/nothing").status_code == 404


def test_api_browses_runs_and_reports(client, tmp_path):
    """A Table 1 / benchmark report next to the config's output_dir is listed and shown."""
    client, studio = client
    d = studio.roots[1] / "bench_run"
    d.mkdir(parents=True, exist_ok=True)
    (d / "benchmark.md").write_text("| what | value |\n|---|---|\n| seed-it/s | 12.5 |\n")
    runs = client.get("/api/runs").get_json()["runs"]
    run = next(r for r in runs if r["name"] == str(d))
    assert run["kinds"] == ["benchmark.md"]
    details = client.get(f"/api/run/{run['id']}").get_json()
    assert "seed-it/s | 12.5" in details["reports"]["benchmark.md"]
    z = zipfile.ZipFile(io.BytesIO(client.get(f"/download/run/{run['id']}").data))
    assert z.namelist() == ["bench_run/benchmark.md"]
    z = zipfile.ZipFile(io.BytesIO(client.get("/download/segmenter.zip").data))
    assert "segmenter/model.json" in z.namelist()          # the config's segmenter until one is trained


def test_cli_bad_model_path_is_one_line(tmp_path):
    need_flask()
    work = tmp_path / "studio"
    res = subprocess.run([sys.executable, "-m", "dds_jax.studio", f"--config={DEMO}", "--port=1",
                          f"--workdir={work}", f"--config.segmenter_ckpt={tmp_path / 'nope'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: {tmp_path / 'nope'}: no converted model there (expected {tmp_path / 'nope'}"
                     "/model.json); convert a checkpoint with convert/torch_to_flax.py"], res.stderr
    assert not work.exists()


# --------------------------------------------------------------------------------------------------
# Access control over real HTTP: the secret, the Host check (DNS rebinding), the Origin check
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def http_studio(api_studio):
    """The studio's app served on a free local port (in-process werkzeug server, a thread)."""
    from werkzeug.serving import make_server
    from dds_jax.studio.app import create_app
    port = free_port()
    server = make_server("127.0.0.1", port, create_app(api_studio, TOKEN, "127.0.0.1", port), threaded=True)
    import threading
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port, api_studio
    server.shutdown()


def http(port, method, path, headers=None, body=None):
    """(status, headers, body text) of one request; ``headers`` may replace Host."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = dict(headers or {})
    conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body or b"")))
    conn.endheaders(body or None)
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
    conn.close()
    return out


def let_in(port) -> str:
    """The Cookie header a browser keeps after opening the printed URL (and checks on that cookie)."""
    status, headers, _ = http(port, "GET", f"/?token={TOKEN}")
    assert status == 302 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"dds_studio_token_{port}={TOKEN};"), cookie
    attrs = {a.strip().lower() for a in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= attrs, cookie
    return cookie.split(";")[0]


def test_http_normal_path_with_the_cookie(http_studio):
    port, studio = http_studio
    cookie = let_in(port)
    own = f"http://127.0.0.1:{port}"
    status, _, text = http(port, "GET", "/", {"Cookie": cookie})
    assert status == 200 and "<html" in text.lower()
    status, _, text = http(port, "GET", "/api/info", {"Cookie": cookie})
    assert status == 200 and json.loads(text)["image_size"] == S
    assert http(port, "GET", "/download/segmenter.zip", {"Cookie": cookie})[0] == 200
    assert http(port, "GET", "/static/studio.js", {"Cookie": cookie})[0] == 200
    for host in ("localhost", "[::1]"):                          # the loopback names are this studio's
        assert http(port, "GET", "/api/info", {"Cookie": cookie, "Host": f"{host}:{port}"})[0] == 200
    # a change from the studio's own page (its Origin) gets past the guard to the API's own checks
    status, _, text = http(port, "POST", "/api/sample", {"Cookie": cookie, "Origin": own,
                                                         "Content-Type": "application/json"}, b'{"seeds": "7-3"}')
    assert status == 400 and "end before start" in text
    # scripts may send the secret as a header instead of the cookie
    assert http(port, "GET", "/api/info", {"Authorization": f"token {TOKEN}"})[0] == 200


@pytest.mark.parametrize("path", ["/", "/api/info", "/api/runs", "/api/jobs/sample-1", "/files/0/x.png",
                                  "/download/segmenter.zip", "/download/run/0/x", "/static/studio.js"])
def test_http_refuses_requests_without_the_secret(http_studio, path):
    port, _ = http_studio
    for headers in ({}, {"Cookie": f"dds_studio_token_{port}=wrong-secret"}, {"Authorization": "token nope"},
                    {"Cookie": f"dds_studio_token_{port + 1}={TOKEN}"}):     # another studio's cookie
        status, _, text = http(port, "GET", path, headers)
        assert status == 403, (path, headers)
        assert "no valid studio token" in text and "?token=" in text and text.strip().count("\n") == 0, text
    status, _, text = http(port, "GET", f"/?token=wrong-{TOKEN}")
    assert status == 403 and "Set-Cookie" not in text


def test_http_refuses_a_foreign_host(http_studio):
    """DNS rebinding: a page re-points its own name at 127.0.0.1; the Host header gives it away."""
    port, _ = http_studio
    cookie = let_in(port)
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.attacker.example:{port}", ""):
        status, _, text = http(port, "GET", "/api/info", {"Cookie": cookie, "Host": host})
        assert status == 403 and json.loads(text)["error"].startswith(f"forbidden: Host {host!r} is not"), text
    status, _, text = http(port, "GET", f"/?token={TOKEN}", {"Host": f"attacker.example:{port}"})
    assert status == 403 and "Set-Cookie" not in text


def test_http_refuses_changes_from_another_origin(http_studio):
    """Cross-site requests: a JSON POST, and the multipart upload any page can send without a preflight."""
    port, studio = http_studio
    cookie = let_in(port)
    for origin in ("http://attacker.example", f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}",
                   "null"):
        status, _, text = http(port, "POST", "/api/sample", {"Cookie": cookie, "Origin": origin,
                                                             "Content-Type": "application/json"}, b'{"seeds": "0"}')
        assert status == 403 and f"a request from {origin} may not change the studio" in text, (origin, text)
    boundary = "b0undary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"seed\"\r\n\r\n0\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"parts\"\r\n\r\nhair\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"l.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + png_bytes(hair_label()) + f"\r\n--{boundary}--\r\n".encode()
    multipart = {"Cookie": cookie, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, _, text = http(port, "POST", "/api/label", dict(multipart, Origin="http://attacker.example"), form)
    assert status == 403 and "may not change the studio" in text
    status, _, text = http(port, "POST", "/api/label", dict(multipart, **{"Sec-Fetch-Site": "cross-site"}), form)
    assert status == 403 and "from another site" in text
    assert not (studio.labels_dir / "seed_0.png").exists()
    # the same upload from the studio's own page is taken
    status, _, text = http(port, "POST", "/api/label", dict(multipart, Origin=f"http://127.0.0.1:{port}"), form)
    assert status == 200 and json.loads(text)["pixels"] == {"hair": 9 * S}, text
    (studio.labels_dir / "seed_0.png").unlink()


def test_token_flag_refuses_a_weak_secret(tmp_path):
    from dds_jax.studio import access
    for bad in ("", "short", "has spaces in the secret", "x" * 15, "a&b" * 8):
        with pytest.raises(ValueError, match="--token must be at least 16"):
            access.check_token_choice(bad)
    assert access.check_token_choice("x" * 16) == "x" * 16
    assert access.url("127.0.0.1", 8765, "abc") == "http://127.0.0.1:8765/?token=abc"
    assert access.url("::1", 8765, "abc") == "http://[::1]:8765/?token=abc"
    assert access.url("0.0.0.0", 1, "abc") == "http://127.0.0.1:1/?token=abc"


# --------------------------------------------------------------------------------------------------
# A real browser session
# --------------------------------------------------------------------------------------------------
def chromium_path():
    for p in (os.environ.get("DDS_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if p and pathlib.Path(p).is_file():
            return p
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def studio_server(tmp_path):
    """``python -m dds_jax.studio --config=configs/demo.py`` on a free local port (only when there is
    a browser to drive it)."""
    need_flask()
    pytest.importorskip("playwright.sync_api", reason="the studio extra is not installed")
    if chromium_path() is None:
        pytest.skip("no chromium (apt-get install chromium)")
    port = free_port()
    work = tmp_path / "studio"
    log = open(tmp_path / "studio.log", "w")
    # chunk 2: with 40 iterations the studio's schedule is the demo_run fixture's (chunk 2, a snapshot
    # every 2), so its DDS step is read from the compilation cache
    proc = subprocess.Popen([sys.executable, "-m", "dds_jax.studio", f"--config={DEMO}", f"--port={port}",
                             f"--workdir={work}", f"--config.output_dir={tmp_path / 'runs' / 'demo'}",
                             "--config.chunk=2"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:       # the URL it prints (with its secret), then the server answering that secret
            found = re.search(r"DDS studio on (http://\S+)", (tmp_path / "studio.log").read_text())
            try:
                if found:
                    token = found.group(1).split("?token=", 1)[1]
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/info",
                                                 headers={"Authorization": f"token {token}"})
                    urllib.request.urlopen(req, timeout=2).read()
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the studio did not start:\n" + (tmp_path / "studio.log").read_text())
            time.sleep(0.5)
        assert found.group(1).startswith(f"http://127.0.0.1:{port}/?token=") and len(token) >= 16
        yield found.group(1), work
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_or_error(page, condition: str):
    """Wait for ``condition`` (JS) or for the page's error banner; fail with the banner's message."""
    page.wait_for_function(f"({condition}) || !document.querySelector('#error').hidden")
    assert page.is_hidden("#error"), page.text_content("#error")


def test_browser_session(studio_server, tmp_path):
    from playwright import sync_api
    exe = chromium_path()
    url, work = studio_server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1200})
        page.set_default_timeout(480_000)     # CPU compiles on a busy 2-core machine
        page.goto(url)                                       # the printed URL, with its token
        page.wait_for_selector("body[data-ready='1']")
        assert page.url.endswith("/") and "token" not in page.url      # the cookie holds it now
        url = url.split("/?token=", 1)[0]
        assert page.input_value("#parts") == "hair"          # configs/demo.py: parts = "hair"

        # 1. a grid of source samples; choose seed 0
        page.fill("#sample-seeds", "0-3")
        page.click("#sample-btn")
        page.wait_for_function("document.querySelectorAll('#sample-grid figure').length === 4")
        page.click("#sample-grid figure[data-seed='0']")
        page.wait_for_function("S.image !== null")

        # 2. paint the hair (top rows) with the mouse; a stray stroke, undone
        box = page.locator("#paint").bounding_box()
        cell = box["width"] / S
        page.fill("#brush", "6")                 # range input: a 6-pixel brush
        page.dispatch_event("#brush", "input")
        for row in (2, 5, 8):
            page.mouse.move(box["x"] + 2 * cell, box["y"] + row * cell)
            page.mouse.down()
            for col in range(2, S - 1, 2):
                page.mouse.move(box["x"] + col * cell, box["y"] + row * cell)
            page.mouse.up()
        painted = page.evaluate("Array.from(S.label)")
        page.mouse.move(box["x"] + 16 * cell, box["y"] + 28 * cell)
        page.mouse.down()
        page.mouse.move(box["x"] + 20 * cell, box["y"] + 28 * cell)
        page.mouse.up()
        assert page.evaluate("Array.from(S.label)") != painted
        page.click("#undo-btn")
        assert page.evaluate("Array.from(S.label)") == painted
        label = np.asarray(painted).reshape(SIZE)
        assert (label[:9] == 1).mean() > 0.8 and not label[20:].any()

        # a bad upload is refused with its message on the page
        page.set_input_files("#mask-file", files=[{"name": "notes.png", "mimeType": "image/png",
                                                   "buffer": b"not an image at all"}])
        page.click("#upload-btn")
        page.wait_for_selector("#error:not([hidden])")
        assert "notes.png: not an image" in page.text_content("#error")
        page.click("#save-label-btn")            # the painted label is accepted; the message goes
        page.wait_for_function("document.querySelector('#label-status').textContent.includes('saved')")
        assert page.text_content("#label-status") == f"label of seed 0 saved (hair: {int((label == 1).sum())} px)"
        assert page.is_hidden("#error")

        # 3. train (few epochs), then masks of both domains
        page.fill("#epochs", "5")
        page.fill("#mask-seeds", "0-3")
        page.click("#train-btn")
        wait_or_error(page, "document.querySelectorAll('#masks-target figure img').length === 4 && "
                      f"[...document.querySelectorAll('#masks-target img')].every(i => i.naturalWidth === {S})")
        assert "segmenter trained on seed(s) 0: parts hair" in page.text_content("#train-status")
        train_job = page.evaluate("S.jobs.train")
        assert (train_job["done"], train_job["total"], train_job["message"][:10]) == (5, 5, "epoch 5/5,")

        # 4. DDS on 2 seeds, a few iterations
        page.fill("#dds-seeds", "0-1")
        page.fill("#iterations", "40")
        page.fill("#batch-size", "2")
        page.click("#dds-btn")
        wait_or_error(page, "document.querySelectorAll('#dds-results tr.seed-row').length === 2 && "
                      "[...document.querySelectorAll('#dds-results img')].every(i => i.naturalWidth > 0)"
                      " && document.querySelector('#dds-status').textContent.includes('done')")
        n_dds = page.evaluate("[...document.querySelectorAll('#dds-results img.result-dds')]"
                              f".filter(i => i.naturalWidth === {S}).length")
        n_gif = page.locator("#dds-results img.gif").count()
        assert (n_dds, n_gif) == (2, 2)
        dds_job = page.evaluate("S.jobs.dds")           # progress: 2 seeds x 40 iterations
        assert (dds_job["done"], dds_job["total"]) == (80, 80)
        assert dds_job["message"].startswith("80/80 seed-iterations")
        page.wait_for_function("document.querySelectorAll('#run-list li').length >= 1")
        page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)

        # 5. browse: the new run is listed and opens with its results
        page.click(f"#run-list li[data-run='{page.evaluate('S.runId')}']")
        page.wait_for_function("document.querySelectorAll('#run-view tr.seed-row').length === 2")
        assert "contact_sheet_s2t.png" in page.text_content("#run-view")

        # 6. downloads
        seg_zip = zipfile.ZipFile(io.BytesIO(page.request.get(url + "/download/segmenter.zip").body()))
        model = json.loads(seg_zip.read("segmenter/model.json"))
        run_href = page.get_attribute("#download-run", "href")
        run_zip = zipfile.ZipFile(io.BytesIO(page.request.get(url + run_href).body()))
        browser.close()

    # What the page showed is what the studio wrote, through the package's own formats.
    assert model["kind"] == "segmenter" and model["config"]["parts"] == ["hair"]
    assert model["config"]["training"]["epochs"] == 5 and model["config"]["training"]["seeds"] == [0]
    saved = label_io.read_label(work / "labels" / "seed_0.png",
                               label_io.color_table([["hair"]], label_io.parse_colors({"hair": "#ff0000"})), SIZE)
    np.testing.assert_array_equal(saved, label)
    (run_dir,) = [d for d in (work / "runs").iterdir() if d.is_dir()]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["seeds"] == [0, 1] and run["config"]["iterations"] == 40
    assert (run["config"]["chunk"], run["config"]["snapshot_every"]) == (2, 2)
    assert run["config"]["segmenter_ckpt"] == str(work.resolve() / "segmenter")
    names = set(run_zip.namelist())
    for s in (0, 1):
        assert {f"{run_dir.name}/s2t/seed_{s}/{n}.png" for n in ("source", "dds", "crossover")} <= names
        assert f"{run_dir.name}/s2t/seed_{s}/optimisation.gif" in names
    shot = os.environ.get("DDS_STUDIO_SCREENSHOT")
    if shot:
        shutil.copyfile(tmp_path / "studio.png", shot)
