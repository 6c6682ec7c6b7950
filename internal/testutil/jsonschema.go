package testutil

import (
	"bytes"
	"os"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var schemas sync.Map // string(schema) -> *jsonschema.Schema

// ValidateJSON checks doc against a JSON Schema (compiled once per test
// binary, with format assertions on). A schema that does not compile or a
// doc that is not JSON fails the test; the validation error is returned.
func ValidateJSON(t testing.TB, schema, doc []byte) error {
	t.Helper()
	s, ok := schemas.Load(string(schema))
	if !ok {
		sdoc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
		if err != nil {
			t.Fatalf("schema is not JSON: %v", err)
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if err := c.AddResource("schema.json", sdoc); err != nil {
			t.Fatalf("load schema: %v", err)
		}
		compiled, err := c.Compile("schema.json")
		if err != nil {
			t.Fatalf("compile schema: %v", err)
		}
		s, _ = schemas.LoadOrStore(string(schema), compiled)
	}
	d, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("document is not JSON: %v", err)
	}
	return s.(*jsonschema.Schema).Validate(d)
}

// CheckJSONFile fails the test (without stopping it) when the file at path
// does not match schema.
func CheckJSONFile(t testing.TB, schema []byte, path string) {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateJSON(t, schema, doc); err != nil {
		t.Errorf("%s does not match its schema: %v\n%s", path, err, doc)
	}
}
