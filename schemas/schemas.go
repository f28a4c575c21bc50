// Package schemas embeds the Avro schemas that are the source of truth for
// every record on Kafka: the current version of each record in *.avsc, and
// every released version as a byte copy named <full name>.<fingerprint>.avsc
// in history/ (internal/codec's TestSchemaHistoryRecordsCurrent keeps it
// complete, so the folder is never empty).
package schemas

import "embed"

// FS holds *.avsc (current schemas) and history/*.avsc (all released versions).
//
//go:embed *.avsc history/*.avsc
var FS embed.FS
