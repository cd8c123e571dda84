"""The studio's web layer (Flask): JSON endpoints, served files and downloads; the page is static/."""
import io
import pathlib
from typing import Optional

from dds_jax.studio import access
from dds_jax.studio.engine import Studio, parse_seed_list
from dds_jax.studio.jobs import JobRunner
from dds_jax.studio.uploads import MAX_UPLOAD_BYTES, UploadError, read_upload_image

STATIC = pathlib.Path(__file__).parent / "static"


def create_app(studio: Studio, token: str, host: str = "127.0.0.1", port: Optional[int] = None):
    """The studio's app; every request needs ``token`` (:mod:`dds_jax.studio.access`), a ``Host`` of
    ``host`` or a loopback name, and for changes an ``Origin`` of this studio (``port``: None = any)."""
    from flask import Flask, abort, jsonify, redirect, request, send_file

    app = Flask("dds_jax.studio", static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES + 64 * 1024     # the form fields around the file
    runner = JobRunner()
    app.extensions["studio"], app.extensions["studio_jobs"] = studio, runner

    def fail(message: str, status: int = 400):
        return jsonify({"error": message}), status

    @app.errorhandler(UploadError)
    @app.errorhandler(ValueError)
    def bad_request(e):
        return fail(str(e))

    @app.errorhandler(413)
    def too_large(e):
        return fail(f"the upload is too big (at most {MAX_UPLOAD_BYTES // 2**20} MiB)", 413)

    hosts, cookie = access.allowed_hosts(host), access.cookie_name(port)

    def secret_given():
        auth = request.headers.get("Authorization", "")
        return (request.args.get("token") or request.cookies.get(cookie)
                or (auth[6:].strip() if auth.lower().startswith("token ") else None))

    @app.before_request
    def guard():
        why = access.refusal(request.method, request.headers, hosts, port, token, secret_given())
        if why is not None:
            return (fail(why, 403) if request.path.startswith("/api/")
                    else (why + "\n", 403, {"Content-Type": "text/plain; charset=utf-8"}))
        if request.args.get("token") and request.method == "GET" and request.path == "/":
            response = redirect("/")                  # the secret leaves the address bar for the cookie
            response.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
            return response

    def body() -> dict:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValueError("the request body must be a JSON object")
        return data

    def submit(kind, fn):
        job = runner.submit(kind, fn)
        return jsonify(job.to_dict()), 202

    @app.get("/")
    def index():
        return send_file(STATIC / "index.html")

    @app.get("/api/info")
    def info():
        return jsonify(studio.info())

    @app.get("/api/jobs/<job_id>")
    def job_state(job_id):
        job = runner.get(job_id)
        if job is None:
            return fail(f"no job {job_id!r}", 404)
        return jsonify(job.to_dict())

    @app.post("/api/sample")
    def sample():
        seeds = str(body().get("seeds", "0-15"))
        parse_seed_list(seeds)                                 # bad seeds: 400 now, not a failed job
        return submit("sample", lambda job: studio.sample(seeds, job))

    @app.post("/api/label")
    def label():
        """A painted label (from the canvas) or an uploaded mask: multipart file + seed + parts."""
        f = request.files.get("file")
        if f is None:
            raise UploadError("no file in the upload: choose a PNG label mask")
        name = f.filename or "upload"
        data = f.read(MAX_UPLOAD_BYTES + 1)
        size = (studio.image_size, studio.image_size)
        rgba = read_upload_image(data, name, size)
        parts = request.form.get("parts", "")
        return jsonify(studio.save_label(request.form.get("seed"), parts, rgba, name))

    @app.post("/api/train")
    def train():
        b = body()
        seeds = [int(s) for s in b.get("seeds") or []]
        parts, epochs = str(b.get("parts", "")), int(b.get("epochs", 100))
        from dds_jax.segmentation import labels as label_io
        label_io.parse_class_spec(parts)                        # bad parts: 400 now, not a failed job
        return submit("train", lambda job: studio.train(seeds, parts, epochs, job))

    @app.post("/api/masks")
    def masks():
        seeds = str(body().get("seeds", "0-15"))
        parse_seed_list(seeds)
        return submit("masks", lambda job: studio.masks(seeds, job))

    @app.post("/api/dds")
    def dds():
        b = body()
        out = studio.new_run_dir()
        parts = b.get("parts")
        c = studio.dds_config(str(b.get("seeds", "0-1")), int(b.get("iterations", 100)),
                              int(b.get("batch_size", 8)), None if parts is None else str(parts), out)
        job = runner.submit("dds", lambda job: studio.run_dds(c, job))
        return jsonify(dict(job.to_dict(), run=studio.run_id(out))), 202

    @app.get("/api/runs")
    def runs():
        return jsonify({"runs": studio.list_runs()})

    @app.get("/api/run/<path:run_id>")
    def run(run_id):
        try:
            return jsonify(studio.run_details(run_id))
        except FileNotFoundError as e:
            return fail(str(e), 404)

    @app.get("/files/<int:root>/<path:rel>")
    def files(root, rel):
        try:
            path = studio.resolve_file(root, rel)
        except FileNotFoundError:
            abort(404)
        return send_file(path, max_age=0)

    @app.get("/download/segmenter.zip")
    def download_segmenter():
        return send_file(io.BytesIO(studio.zip_segmenter()), mimetype="application/zip",
                         as_attachment=True, download_name="segmenter.zip")

    @app.get("/download/run/<path:run_id>")
    def download_run(run_id):
        try:
            data = studio.zip_run(run_id)
        except FileNotFoundError as e:
            return fail(str(e), 404)
        name = studio.run_path(run_id).name
        return send_file(io.BytesIO(data), mimetype="application/zip", as_attachment=True,
                         download_name=f"{name}.zip")

    return app
