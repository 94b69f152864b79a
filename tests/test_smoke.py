"""The built-in site answers its routes over a real socket."""

import httpx


def test_builtin_routes(server):
    with httpx.Client(base_url=server.url, timeout=5) as client:
        r = client.get("/plaintext")
        assert (r.status_code, r.text, r.headers["content-type"]) == (200, "Hello, World!", "text/plain")
        assert r.headers["server"] == "prefork" and r.headers["date"].endswith("GMT")
        assert client.get("/json").json() == {"message": "Hello, World!"}
        r = client.post("/echo", content=b"abc\x00def", headers={"content-type": "application/x-test"})
        assert (r.content, r.headers["content-type"]) == (b"abc\x00def", "application/x-test")
        r = client.get("/")
        assert r.status_code == 200 and "/plaintext" in r.text and "text/html" in r.headers["content-type"]
        assert client.get("/nope").status_code == 404
