//go:build !unix

package video

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked by another process")

// lockFile does nothing where flock does not exist. Asked not to wait, it
// fails, so that no temporary file is ever taken for abandoned: they are
// then left for the user to remove.
func lockFile(_ *os.File, nonBlocking bool) error {
	if nonBlocking {
		return errors.ErrUnsupported
	}
	return nil
}
