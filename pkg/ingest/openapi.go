package ingest

// openAPI describes POST /v1/events (served at GET /v1/openapi.json).
const openAPI = `{
  "openapi": "3.0.3",
  "info": {"title": "jetmon ingest", "version": "1", "description": "Publish jetmon events over HTTP. The event wire format is docs/wire-format.md."},
  "paths": {
    "/v1/events": {
      "post": {
        "summary": "Publish events",
        "description": "The body is one event (application/json), a JSON array of events, or NDJSON (application/x-ndjson, one event per line). Each event is validated on its own; good events are published even when others in the same request are rejected.",
        "security": [{"bearer": []}, {}],
        "requestBody": {"required": true, "content": {
          "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Event"}, {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}]}},
          "application/x-ndjson": {"schema": {"type": "string", "description": "one event per line"}}
        }},
        "responses": {
          "202": {"description": "every event accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}},
          "207": {"description": "some events accepted, some rejected (see errors)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}},
          "400": {"description": "no event accepted; the errors name the fields", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}},
          "401": {"description": "missing or wrong bearer token"},
          "413": {"description": "body over the size limit"},
          "503": {"description": "the events are valid but could not be published; retry", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}}
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
        "timestamp": {"type": "string", "format": "date-time"},
        "trace_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "span_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"}
      }},
      "Response": {"type": "object", "properties": {
        "accepted": {"type": "integer"},
        "rejected": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
          "index": {"type": "integer"}, "field": {"type": "string"}, "error": {"type": "string"}, "retry": {"type": "boolean"}
        }}}
      }}
    }
  }
}`
