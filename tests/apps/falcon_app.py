"""A Falcon test app: query strings, a multipart upload, a streamed body and a file (resp.stream)."""

import hashlib
import warnings
from wsgiref.validate import WSGIWarning, validator

import falcon

warnings.simplefilter("error", WSGIWarning)


class Query:
    def on_get(self, req, resp):
        resp.media = {key: req.get_param_as_list(key) for key in req.params}


class Upload:
    def on_post(self, req, resp):
        result = {}
        for part in req.get_media():
            if part.name == "file":
                data = part.stream.read()
                result.update(name=part.filename, size=len(data), sha256=hashlib.sha256(data).hexdigest())
            else:
                result[part.name] = part.text
        resp.media = result


class Stream:
    def on_get(self, req, resp):
        count = req.get_param_as_int("n", default=5)
        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = (f"line {i}\n".encode() for i in range(count))


class File:
    def on_get(self, req, resp):
        resp.content_type = "application/octet-stream"
        resp.stream = open(req.get_param("path", required=True), "rb")


falcon_app = falcon.App()
falcon_app.add_route("/query", Query())
falcon_app.add_route("/upload", Upload())
falcon_app.add_route("/stream", Stream())
falcon_app.add_route("/file", File())

raw = falcon_app
app = validator(falcon_app)
