"""A small OTLP/HTTP trace receiver for the export test, built on the
official OpenTelemetry protobuf definitions (PyPI: opentelemetry-proto).

It listens on 127.0.0.1 (an ephemeral port), prints `port N` first, then
one JSON line per span received. A body that does not parse as an
ExportTraceServiceRequest, or that holds bytes the definitions do not
account for (its canonical re-encoding differs), is answered 400 and
reported as an `error` line.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def attrs(kvs):
    return {kv.key: kv.value.string_value for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        problem = None
        if self.path != "/v1/traces":
            problem = f"path {self.path}"
        elif self.headers.get("content-type") != "application/x-protobuf":
            problem = f"content-type {self.headers.get('content-type')}"
        req = ExportTraceServiceRequest()
        if problem is None:
            try:
                req.ParseFromString(body)
                if req.SerializeToString() != body:
                    problem = "the body holds bytes the definitions do not account for"
            except Exception as e:  # noqa: BLE001 - any parse failure is the finding
                problem = f"does not parse: {e}"
        if problem is not None:
            print(json.dumps({"error": problem}), flush=True)
            self.send_response(400)
            self.end_headers()
            return
        for rs in req.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    print(
                        json.dumps(
                            {
                                "resource": resource,
                                "scope": ss.scope.name,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex(),
                                "name": s.name,
                                "kind": s.kind,
                                "start": s.start_time_unix_nano,
                                "end": s.end_time_unix_nano,
                                "attributes": attrs(s.attributes),
                                "status": s.status.code,
                            }
                        ),
                        flush=True,
                    )
        out = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"port {server.server_address[1]}", flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
