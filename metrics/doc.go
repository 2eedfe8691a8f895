// Package metrics exposes a process's Prometheus metrics over HTTP with the
// official client library. Each long-running command (serve, watch) builds
// its own prometheus.Registry, registers its collectors on it and hands it
// to Listen; nothing is registered globally, so tests can run several
// servers in one process.
package metrics
