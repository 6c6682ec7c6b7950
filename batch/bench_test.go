package batch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkRunOverhead2000Files times a batch of 2000 files with a
// processor that does no video work: what is left is the batch's own cost
// (discovery, state, the report rewritten after every file).
func BenchmarkRunOverhead2000Files(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		root := b.TempDir()
		in, out := filepath.Join(root, "in"), filepath.Join(root, "out")
		for i := range 2000 {
			p := filepath.Join(in, fmt.Sprintf("d%02d/v%04d.mp4", i%40, i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(okVideo+fmt.Sprint(i)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		opts := testOptions(in, out)
		opts.Jobs = 2
		b.StartTimer()
		if _, err := Run(context.Background(), opts, newFakeProc(), Hooks{}); err != nil {
			b.Fatal(err)
		}
	}
}
