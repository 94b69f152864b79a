"""A Flask test app: query strings, a multipart upload, a streamed body and a file (send_file)."""

import hashlib
import warnings
from wsgiref.validate import WSGIWarning, validator

from flask import Flask, Response, jsonify, request, send_file

warnings.simplefilter("error", WSGIWarning)

flask_app = Flask(__name__)


@flask_app.get("/query")
def query():
    return jsonify({key: request.args.getlist(key) for key in request.args})


@flask_app.post("/upload")
def upload():
    upload = request.files["file"]
    data = upload.read()
    return jsonify({"name": upload.filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                    "note": request.form.get("note")})


@flask_app.get("/stream")
def stream():
    count = request.args.get("n", 5, type=int)

    def generate():
        for i in range(count):
            yield f"line {i}\n"

    return Response(generate(), mimetype="text/plain")


@flask_app.get("/file")
def file():
    return send_file(request.args["path"], mimetype="application/octet-stream")


raw = flask_app
app = validator(flask_app)
