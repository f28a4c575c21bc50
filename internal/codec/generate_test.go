package codec

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/gen"
	"golang.org/x/tools/imports"
)

// TestGeneratedTypesFresh regenerates types_gen.go in memory, the way the
// go:generate line in generate.go runs avrogen, and fails if the checked-in file
// differs: someone changed a schema without running go generate ./internal/codec.
func TestGeneratedTypesFresh(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(schemaDir, "*.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths) // the shell's glob order in the go:generate line
	// avrogen's flags: -pkg codec -encoders -tags json:snake, everything else default.
	g := gen.NewGenerator("codec", map[string]gen.TagStyle{"json": gen.Snake},
		gen.WithEncoders(true), gen.WithInitialisms([]string{}))
	cache := &avro.SchemaCache{} // avrogen shares one cache across files, but not ours
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := avro.ParseBytesWithCache(data, "", cache)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		g.Parse(s)
	}
	var buf bytes.Buffer
	if err := g.Write(&buf); err != nil {
		t.Fatal(err)
	}
	want, err := imports.Process("", buf.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("types_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("types_gen.go is stale: run go generate ./internal/codec")
	}
}
