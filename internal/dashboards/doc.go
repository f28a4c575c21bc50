// Package dashboards holds the tests of the Grafana dashboards and the
// Prometheus rules in deploy/: every panel's SQL of the analytics dashboard
// runs against ClickHouse after a seeded history and its numbers are
// compared with the ClickHouse view the query API reads through, and every
// metric a PromQL expression names must be one the binaries export.
package dashboards
