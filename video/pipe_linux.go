package video

import (
	"os"
	"syscall"
)

// fSetPipeSize is F_SETPIPE_SZ, missing from package syscall.
const fSetPipeSize = 1031

// growPipe enlarges the pipe to hold a whole frame (up to the 1 MiB an
// unprivileged process may ask for), so that each frame costs a few large
// writes instead of many 64 KiB ones. Failure only costs speed.
func growPipe(f *os.File, frameSize int) {
	size := min(max(frameSize, 64<<10), 1<<20)
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	// SyscallConn, unlike Fd, leaves the file in non-blocking mode so that
	// Close can still interrupt a blocked Write.
	rc.Control(func(fd uintptr) {
		syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSize, uintptr(size))
	})
}
