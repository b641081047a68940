#!/usr/bin/env python3
"""An OTLP/HTTP trace receiver written with another implementation than clnrm's: PyPI's
`opentelemetry-proto` decodes each POST /v1/traces body, and what it decoded is appended to
--out as one JSON line per request. Used by tests/otel_export.rs and
benches/otel_export_cost.py to check clnrm's export independently.

Prints the port it listens on (one line) once ready. --delay SECONDS answers every request
that late: a slow collector. --ack-first answers 200 as soon as the body is read and decodes
afterwards, as a collector that queues what it receives does (a body the decoder rejects
is then recorded with its error but was answered 200). Needs `python3 -m pip install opentelemetry-proto`.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)


def value(any_value):
    kind = any_value.WhichOneof("value")
    return None if kind is None else getattr(any_value, kind)


def attributes(key_values):
    return {kv.key: value(kv.value) for kv in key_values}


def decoded(request):
    spans = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                        "status": span.status.code,
                        "attributes": attributes(span.attributes),
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                    }
                )
    return spans


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--ack-first", action="store_true")
    args = parser.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if args.delay:
                time.sleep(args.delay)
            if args.ack_first:
                self.answer(200)
            line = {
                "path": self.path,
                "content_type": self.headers.get("content-type"),
            }
            try:
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                line["spans"] = decoded(request)
                code = 200
            except Exception as err:  # a body this decoder rejects is recorded, not fatal
                line["error"] = repr(err)
                code = 400
            with lock, open(args.out, "a") as out:
                out.write(json.dumps(line) + "\n")
            if not args.ack_first:
                self.answer(code)

        def answer(self, code):
            self.send_response(code)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()
            self.wfile.flush()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
