// Command healthcheck exits 0 when a URL answers 200: the health check of
// container images that hold no shell and no curl (the NATS server's, whose
// /healthz it asks).
package main

import (
	"context"
	"os"

	"github.com/jetmon/jetmon/internal/cli"
)

func main() {
	os.Exit(cli.Healthcheck(context.Background(), "healthcheck", "HEALTHCHECK", "http://127.0.0.1:8222/healthz?js-enabled-only=true", os.Args[1:], os.Stderr, os.LookupEnv))
}
