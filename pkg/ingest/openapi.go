package ingest

// openAPI describes POST /v1/events (served at GET /v1/openapi.json).
const openAPI = `{
  "openapi": "3.0.3",
  "info": {"title": "jetmon ingest", "version": "1", "description": "Publish jetmon events over HTTP. The event wire format, with its limits, is docs/wire-format.md."},
  "paths": {
    "/v1/events": {
      "post": {
        "summary": "Publish events",
        "description": "The body is one event (application/json, pretty-printed or not), a JSON array of events, or NDJSON (application/x-ndjson, one event per line; a bad or too long line is rejected alone and the lines after it are still read). A request without a Content-Type is read the same way; any other Content-Type is refused with 415, and a request whose Origin is another server with 403. Each event is validated on its own; good events are published even when others in the same request are rejected. When the ingest publishes to JetStream directly (the response says stored: true), 2xx means every accepted event is stored; an event that could not be stored is rejected with retry: true, and sending it again with the same id is safe (the server deduplicates by id). Types only the pipeline emits (performance.metric.aggregated, monitoring.*, health.threshold.*) need the grant token.",
        "security": [{"bearer": []}, {}],
        "requestBody": {"required": true, "content": {
          "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Event"}, {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}]}},
          "application/x-ndjson": {"schema": {"type": "string", "description": "one event per line"}}
        }},
        "responses": {
          "202": {"description": "every event accepted (stored, when stored is true)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}},
          "207": {"description": "some events accepted, some rejected (see errors)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}},
          "400": {"description": "no event accepted; the errors name the fields", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}},
          "401": {"description": "missing or wrong bearer token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
          "403": {"description": "a cross-origin request, or every event of a type only the pipeline emits, sent without the grant token", "content": {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Response"}, {"$ref": "#/components/schemas/Error"}]}}}},
          "413": {"description": "the body is over the size limit, or every event is too large to store (the errors name the limit)", "content": {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Response"}, {"$ref": "#/components/schemas/Error"}]}}}},
          "415": {"description": "the Content-Type is not JSON: send application/json or application/x-ndjson", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
          "503": {"description": "the events are valid but were not stored; retry with the same ids (Retry-After says when)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}}
        }
      }
    }
  },
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "schemas": {
      "Event": {"type": "object", "required": ["event_type", "id", "source", "timestamp"], "additionalProperties": true, "properties": {
        "event_type": {"type": "string", "example": "performance.operation.complete"},
        "id": {"type": "string", "maxLength": 128},
        "source": {"type": "string", "maxLength": 256},
        "timestamp": {"type": "string", "format": "date-time", "description": "at most 5 minutes in the future"},
        "trace_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "span_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "duration_ms": {"type": "number", "minimum": 0, "maximum": 1e10},
        "latency_ms": {"type": "number", "minimum": 0, "maximum": 1e10},
        "value": {"type": "number", "minimum": -1e15, "maximum": 1e15},
        "attributes": {"type": "object", "maxProperties": 64, "additionalProperties": {"type": "string", "maxLength": 1024}}
      }},
      "Response": {"type": "object", "required": ["accepted", "rejected", "stored"], "properties": {
        "accepted": {"type": "integer", "description": "events published (stored, when stored is true)"},
        "rejected": {"type": "integer", "description": "items refused, listed or not"},
        "stored": {"type": "boolean", "description": "true: the accepted events are stored in JetStream; false: handed to a publisher that stores them later"},
        "errors": {"type": "array", "description": "the rejected items with the lowest indexes, at most 100 (by default)", "items": {"type": "object", "properties": {
          "index": {"type": "integer"}, "field": {"type": "string"}, "error": {"type": "string"},
          "status": {"type": "integer", "description": "400, 403, 413 or 503: the status this item alone would have had"},
          "retry": {"type": "boolean", "description": "sending the item again may succeed"}
        }}},
        "errors_omitted": {"type": "integer", "description": "rejected items not listed in errors"}
      }},
      "Error": {"type": "object", "properties": {"error": {"type": "string"}}}
    }
  }
}`
