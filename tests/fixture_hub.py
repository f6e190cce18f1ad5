"""A Hugging Face hub on 127.0.0.1 with just what `huggingface_hub` asks for when it lists and downloads.

    with FakeHub({"owner/repo": {"LSM_light_x2.npz": data}}) as hub:   # hub.endpoint -> HF_ENDPOINT
        ...
        hub.requests      # [(method, path), ...] as received

Served:
  GET  /api/models/{owner}/{repo}/tree/{rev}?recursive=..   the listing: [{"type": "file", "path", "size", "oid",
                                                            "lfs": {"oid": sha256, "size", "pointerSize"}}]
  HEAD /{owner}/{repo}/resolve/{rev}/{path}                 X-Repo-Commit, ETag (the sha256), Content-Length
  GET  /{owner}/{repo}/resolve/{rev}/{path}                 the bytes (`mode` can damage them)
  GET  /files/{path}                                        a plain download (for https:// sources)
Anything else is a 404 with the hub's X-Error-Code header.

`hub.mode[path]`: "garbage" sends other bytes of the same length; "cut" sends half the bytes and closes the
connection, and answers the client's retries with a 500, as a server that went down.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], files: dict[str, bytes] | None = None):
        self.repos, self.files = repos, files or {}
        self.mode: dict[str, str] = {}
        self.cut: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._handle(self, head=True)

            def do_GET(self):
                hub._handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FakeHub":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, method: str, fragment: str = "") -> int:
        return sum(1 for m, p in self.requests if m == method and fragment in p)

    # ------------------------------------------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler, head: bool) -> None:
        url = urllib.parse.urlsplit(req.path)
        path = urllib.parse.unquote(url.path)
        self.requests.append(("HEAD" if head else "GET", path))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree":
            repo = "/".join(parts[2:4])
            if repo not in self.repos:
                return self._error(req, 404, "RepoNotFound")
            listing = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest(),
                        "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}}
                       for name, data in self.repos[repo].items()]
            return self._send(req, 200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, head)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, name = "/".join(parts[:2]), "/".join(parts[4:])
            data = self.repos.get(repo, {}).get(name)
            if data is None:
                return self._error(req, 404, "EntryNotFound" if repo in self.repos else "RepoNotFound")
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                       "Content-Type": "application/octet-stream"}
            return self._body(req, name, data, headers, head)
        if parts[0] == "files" and "/".join(parts[1:]) in self.files:
            name = "/".join(parts[1:])
            return self._body(req, name, self.files[name], {"Content-Type": "application/octet-stream"}, head)
        return self._error(req, 404, "EntryNotFound")

    def _body(self, req, name: str, data: bytes, headers: dict, head: bool) -> None:
        mode = self.mode.get(name)
        if mode == "cut" and not head:
            if name in self.cut:      # after the cut the server is down (no 5 slow retries)
                return self._error(req, 500, None)
            self.cut.add(name)
            req.send_response(200)
            for k, v in {**headers, "Content-Length": str(len(data))}.items():
                req.send_header(k, v)
            req.end_headers()
            req.wfile.write(data[: len(data) // 2])
            req.wfile.flush()
            req.close_connection = True
            return
        if mode == "garbage":
            data = bytes((b ^ 0x5A) for b in data)
        self._send(req, 200, data, headers, head)

    def _send(self, req, status: int, data: bytes, headers: dict, head: bool) -> None:
        req.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(data))}.items():
            req.send_header(k, v)
        req.end_headers()
        if not head:
            req.wfile.write(data)

    def _error(self, req, status: int, code: str | None) -> None:
        body = json.dumps({"error": code or "server error"}).encode()
        headers = {"Content-Type": "application/json", **({"X-Error-Code": code} if code else {})}
        self._send(req, status, body, headers, head=req.command == "HEAD")
