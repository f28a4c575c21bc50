// Package dashboards holds the tests of the Grafana dashboards and the
// Prometheus rules in deploy/: every panel's SQL of the analytics dashboard
// runs against ClickHouse after a seeded history and its numbers are
// compared with the ClickHouse view the query API reads through, and every
// metric a PromQL expression names must be one the binaries export.
// SQLPanels and RenderSQL give the panels' SQL as Grafana would run it, for
// those tests and for the console's browser test, which renders them.
package dashboards
