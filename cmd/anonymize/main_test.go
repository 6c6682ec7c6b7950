package main

import (
	"fmt"
	"os"
	"testing"
)

// sharedDir holds what the package's tests build once and share (the
// binary, the synthetic models, the clips). t.TempDir cannot hold them, as
// it is removed with the first test that asks; TestMain removes this one
// when the tests end, so that runs do not pile up in the system's temp.
var sharedDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "anonymize-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "anonymize tests:", err)
		os.Exit(1)
	}
	sharedDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sharedSubdir makes a named folder under sharedDir.
func sharedSubdir(name string) (string, error) {
	return os.MkdirTemp(sharedDir, name+"-")
}
