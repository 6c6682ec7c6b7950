//go:build !linux

package video

import "os"

// growPipe is a no-op where the pipe size cannot be set.
func growPipe(*os.File, int) {}
