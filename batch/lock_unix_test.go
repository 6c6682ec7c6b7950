//go:build unix

package batch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Only where flock exists: elsewhere lockFile does not lock.
func TestRunRefusesSecondRunOnSameShard(t *testing.T) {
	in, out := testDirs(t, threeVideos)
	lockDir := filepath.Join(out, ".anonymize")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(filepath.Join(lockDir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), testOptions(in, out), newFakeProc(), Hooks{})
	if !errors.Is(err, errLocked) {
		t.Errorf("Run while another holds the lock: %v", err)
	}
	// Another shard has its own lock.
	opts := testOptions(in, out)
	opts.Shard = ShardSpec{Index: 1, Count: 2}
	runOK(t, opts, newFakeProc(), Hooks{})
	unlock()
	runOK(t, testOptions(in, out), newFakeProc(), Hooks{})
}
