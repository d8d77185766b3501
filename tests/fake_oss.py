"""A loopback stand-in for the few OSS object calls OssStore makes, so the real oss2 client is exercised.

PUT (with `x-oss-forbid-overwrite: true` -> 409 FileAlreadyExists when the key exists), GET
(404 NoSuchKey), DELETE, POST ?append&position= (AppendObject: 409 PositionNotEqualToLength with
x-oss-next-append-position, 409 ObjectNotAppendable on a PutObject object), and GET bucket listing
(ListBucketResult, prefix/marker/max-keys), with
OSS's XML error bodies. Every request must carry an OSS signature; the test reads `requests`.
"""

from __future__ import annotations

import hashlib
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape


class FakeOss:
    def __init__(self, bucket: str = "vpcprobe-state") -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}
        self.appendable: set[str] = set()  # keys made by AppendObject (OSS refuses to append to others)
        self.requests: list[dict[str, Any]] = []
        self.fail_next: int | None = None  # answer the next request with this HTTP status
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeOss:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 65536  # one write per response: headers and body apart meet Nagle + delayed ACK (40 ms)

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("x-oss-request-id", "5C1B138A109F4E405B2D8EB0")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status: int, code: str, message: str) -> None:
                body = (
                    f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                    "<RequestId>5C1B138A109F4E405B2D8EB0</RequestId><HostId>fake</HostId></Error>"
                ).encode()
                self._reply(status, body, {"Content-Type": "application/xml"})

            def _route(self) -> tuple[str, str, dict[str, list[str]]] | None:
                parts = urlsplit(self.path)
                bucket, _, key = parts.path.lstrip("/").partition("/")
                fake.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "auth": self.headers.get("Authorization", ""),
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
                if not self.headers.get("Authorization", "").startswith("OSS"):
                    self._error(403, "AccessDenied", "missing signature")
                    return None
                if bucket != fake.bucket:
                    self._error(404, "NoSuchBucket", "The specified bucket does not exist.")
                    return None
                with fake.lock:
                    status, fake.fail_next = fake.fail_next, None
                if status:
                    self._error(status, "InternalError", "injected")
                    return None
                return bucket, unquote(key), parse_qs(parts.query, keep_blank_values=True)

            def do_PUT(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                route = self._route()
                if route is None:
                    return
                _, key, _ = route
                with fake.lock:
                    if self.headers.get("x-oss-forbid-overwrite", "").lower() == "true" and key in fake.objects:
                        exists = True
                    else:
                        exists = False
                        fake.objects[key] = data
                        fake.appendable.discard(key)
                if exists:
                    self._error(409, "FileAlreadyExists", "The object you specified already exists.")
                    return
                self._reply(200, b"", {"ETag": f'"{hashlib.md5(data).hexdigest().upper()}"'})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                route = self._route()
                if route is None:
                    return
                _, key, query = route
                if "append" not in query:
                    self._error(400, "InvalidArgument", "only AppendObject is faked")
                    return
                position = int(query.get("position", ["0"])[0])
                with fake.lock:
                    current = fake.objects.get(key)
                    if current is not None and key not in fake.appendable:
                        problem: tuple[str, int] | None = ("ObjectNotAppendable", len(current))
                    elif position != len(current or b""):
                        problem = ("PositionNotEqualToLength", len(current or b""))
                    else:
                        problem = None
                        fake.objects[key] = (current or b"") + data
                        fake.appendable.add(key)
                        after = len(fake.objects[key])
                if problem is not None:
                    code, at = problem
                    body = (
                        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{code}</Message>'
                        "<RequestId>5C1B138A109F4E405B2D8EB0</RequestId><HostId>fake</HostId></Error>"
                    ).encode()
                    self._reply(409, body, {"Content-Type": "application/xml", "x-oss-next-append-position": str(at)})
                    return
                self._reply(200, b"", {"x-oss-next-append-position": str(after), "ETag": '"A"'})

            def do_GET(self) -> None:  # noqa: N802
                route = self._route()
                if route is None:
                    return
                _, key, query = route
                if not key:
                    self._list(query)
                    return
                with fake.lock:
                    data = fake.objects.get(key)
                if data is None:
                    self._error(404, "NoSuchKey", "The specified key does not exist.")
                    return
                self._reply(
                    200,
                    data,
                    {
                        "ETag": f'"{hashlib.md5(data).hexdigest().upper()}"',
                        "Last-Modified": formatdate(usegmt=True),
                        "Content-Type": "application/octet-stream",
                    },
                )

            def do_DELETE(self) -> None:  # noqa: N802
                route = self._route()
                if route is None:
                    return
                with fake.lock:
                    fake.objects.pop(route[1], None)
                    fake.appendable.discard(route[1])
                self._reply(204)

            def _list(self, query: dict[str, list[str]]) -> None:
                prefix = query.get("prefix", [""])[0]
                marker = query.get("marker", [""])[0]
                limit = int(query.get("max-keys", ["100"])[0])
                with fake.lock:
                    keys = sorted(k for k in fake.objects if k.startswith(prefix) and k > marker)
                page, truncated = keys[:limit], len(keys) > limit
                items = "".join(
                    f"<Contents><Key>{escape(k)}</Key><LastModified>2026-11-22T01:00:00.000Z</LastModified>"
                    f'<ETag>"X"</ETag><Type>Normal</Type><Size>{len(fake.objects.get(k, b""))}</Size>'
                    "<StorageClass>Standard</StorageClass></Contents>"
                    for k in page
                )
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult>'
                    f"<Name>{fake.bucket}</Name><Prefix>{escape(prefix)}</Prefix><Marker>{escape(marker)}</Marker>"
                    f"<MaxKeys>{limit}</MaxKeys><Delimiter></Delimiter><IsTruncated>{str(truncated).lower()}"
                    f"</IsTruncated>{f'<NextMarker>{escape(page[-1])}</NextMarker>' if truncated else ''}"
                    f"{items}</ListBucketResult>"
                ).encode()
                self._reply(200, body, {"Content-Type": "application/xml"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-oss", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
