package inference

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// LibraryEnv names the variable that points at the ONNX Runtime library.
const LibraryEnv = "ANONYMIZE_ORT_LIB"

// libraryNames are the file names the library goes by, newest convention first.
var libraryNames = []string{"libonnxruntime.so.1", "libonnxruntime.so"}

// LibrarySearch says where to look for the ONNX Runtime shared library.
type LibrarySearch struct {
	Flag       string             // --ort-lib
	Env        string             // $ANONYMIZE_ORT_LIB
	Executable string             // path of the running binary; "" skips the beside-the-binary step
	Stat       func(string) error // nil: os.Stat
}

// Candidate is one place the library may be loaded from. System candidates
// are bare file names, resolved by the dynamic loader's own search path.
type Candidate struct {
	Path   string
	Source string
	System bool
}

// ErrLibraryNotFound is returned when no candidate exists.
var ErrLibraryNotFound = errors.New("ONNX Runtime library not found")

// Candidates lists, in order, where to load ONNX Runtime from: an explicit
// --ort-lib or $ANONYMIZE_ORT_LIB is the only candidate when given (a typo
// there must not silently load another build); otherwise the folder next to
// the binary, then the system library path.
func (s LibrarySearch) Candidates() ([]Candidate, error) {
	stat := s.Stat
	if stat == nil {
		stat = func(p string) error { _, err := os.Stat(p); return err }
	}
	if s.Flag != "" {
		if err := stat(s.Flag); err != nil {
			return nil, fmt.Errorf("--ort-lib %s: %w", s.Flag, notFoundHint(err))
		}
		return []Candidate{{Path: s.Flag, Source: "--ort-lib"}}, nil
	}
	if p := s.Env; p != "" {
		if err := stat(p); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", LibraryEnv, p, notFoundHint(err))
		}
		return []Candidate{{Path: p, Source: "$" + LibraryEnv}}, nil
	}
	var out []Candidate
	if s.Executable != "" {
		dir := filepath.Dir(s.Executable)
		for _, sub := range []string{"lib", "."} {
			for _, name := range libraryNames {
				p := filepath.Join(dir, sub, name)
				if stat(p) == nil {
					out = append(out, Candidate{Path: p, Source: "next to the binary"})
				}
			}
		}
	}
	for _, name := range libraryNames {
		out = append(out, Candidate{Path: name, Source: "system library path", System: true})
	}
	return out, nil
}

func notFoundHint(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no such file; %s", InstallHint)
	}
	return err
}

// InstallHint tells a user how to get the library.
const InstallHint = "install ONNX Runtime 1.24 or newer: in the source tree run `make setup` " +
	"(it fetches the CPU build into .deps/ and `make build` copies it to bin/lib/), " +
	"or put libonnxruntime.so.1 in a lib/ folder next to the anonymize binary, " +
	"or point --ort-lib or " + LibraryEnv + " at it"
