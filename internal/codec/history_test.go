package codec

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// update rewrites golden files and fuzz seeds and records new schema versions in
// schemas/history: go test ./internal/codec -update
var update = flag.Bool("update", false, "record new schemas in schemas/history, rewrite golden files and fuzz seeds")

const (
	schemaDir  = "../../schemas"
	historyDir = "../../schemas/history"
)

// schemaFile is one parsed .avsc from disk (not the embedded FS, so -update sees
// what it just wrote).
type schemaFile struct {
	path   string
	data   []byte
	schema avro.Schema
	name   string
	fp     [8]byte // per the specification
	legacy [8]byte // before the ledger followed it (see legacyFingerprint)
}

func readSchemaFiles(t *testing.T, pattern string) []schemaFile {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	var out []schemaFile
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s, name, fp, err := parseSchema(data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		legacy, err := legacyFingerprint(s)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, schemaFile{path: p, data: data, schema: s, name: name, fp: fp, legacy: legacy})
	}
	return out
}

// TestSchemaHistoryRecordsCurrent: every released schema must stay in
// schemas/history forever, because events written with it stay on the events topic
// forever. A schema change therefore needs a new history file, written by -update.
func TestSchemaHistoryRecordsCurrent(t *testing.T) {
	current := readSchemaFiles(t, filepath.Join(schemaDir, "*.avsc"))
	if len(current) == 0 {
		t.Fatal("no schemas found in " + schemaDir)
	}
	for _, s := range current {
		file := filepath.Join(historyDir, historyFileName(s.name, s.fp))
		recorded, err := os.ReadFile(file)
		switch {
		case err == nil:
			// A doc-only edit keeps the fingerprint; the recorded copy stays as released.
			if _, _, fp, err := parseSchema(recorded); err != nil || fp != s.fp {
				t.Errorf("%s does not hold the schema its name says (fingerprint %x): %v", file, fp, err)
			}
		case !os.IsNotExist(err):
			t.Fatal(err)
		case *update:
			if err := os.WriteFile(file, s.data, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("recorded %s", file)
		default:
			t.Errorf("schema %s changed: run `go test ./internal/codec -run TestSchemaHistory -update` to record it (%s is missing)", s.name, file)
		}
	}
}

// TestSchemaCompatibility: the current schema of every name must read every released
// version of that name (backward compatibility), so old events and commands stay
// decodable. Forward compatibility is not required: readers deploy before writers.
func TestSchemaCompatibility(t *testing.T) {
	current := map[string]schemaFile{}
	for _, s := range readSchemaFiles(t, filepath.Join(schemaDir, "*.avsc")) {
		current[s.name] = s
	}
	history := readSchemaFiles(t, filepath.Join(historyDir, "*.avsc"))
	if len(history) < len(current) {
		t.Errorf("schemas/history has %d files for %d current schemas", len(history), len(current))
	}
	compat := avro.NewSchemaCompatibility()
	for _, h := range history {
		base := filepath.Base(h.path)
		if want := historyFileName(h.name, h.fp); base != want && base != historyFileName(h.name, h.legacy) {
			t.Errorf("%s holds %s with fingerprint %x: name it %s", h.path, h.name, h.fp, want)
		}
		cur, ok := current[h.name]
		if !ok {
			t.Errorf("%s: %s has no current schema in schemas/ (released schemas cannot be removed)", h.path, h.name)
			continue
		}
		if err := compat.Compatible(cur.schema, h.schema); err != nil {
			t.Errorf("%s cannot read %s (a released version): %v", cur.path, h.path, err)
		}
	}
}

// TestSchemaFilesSelfContained: every .avsc parses on its own and declares exactly
// one top-level record, which is what the catalog (private parse caches) and the
// history files (one copy per version) rely on.
func TestSchemaFilesSelfContained(t *testing.T) {
	for _, s := range readSchemaFiles(t, filepath.Join(schemaDir, "*.avsc")) {
		want := strings.TrimSuffix(filepath.Base(s.path), ".avsc")
		got := s.name[strings.LastIndexByte(s.name, '.')+1:]
		if !strings.EqualFold(strings.ReplaceAll(want, "_", ""), got) {
			t.Errorf("%s declares %s; the file name should match the record name", s.path, s.name)
		}
		if !bytes.HasSuffix(s.data, []byte("\n")) {
			t.Errorf("%s: missing final newline", s.path)
		}
	}
}
