package video

import (
	"context"
	"os/exec"
	"syscall"
)

// command prepares a child process (ffmpeg, ffprobe) that never outlives
// this one: the kernel kills it when this process dies, even by SIGKILL,
// and ctx's end kills it too. It gets its own process group, so that a
// Ctrl-C or hang-up meant for anonymize does not reach it directly: an
// ffmpeg that receives SIGINT finishes its file into a playable partial
// video, while anonymize, which does receive the signal, kills it and
// removes the partial file instead.
//
// The parent-death signal is tied to the thread that started the child;
// Go never ends its threads while the program runs unless a goroutine
// exits while locked to one, which this program never does.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}
