//go:build !linux

package video

import (
	"context"
	"os/exec"
)

// command prepares a child process that ctx's end kills. Only Linux can
// also have the kernel kill it when this process dies.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}
