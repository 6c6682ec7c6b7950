package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFile replaces path with data, created with perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return WriteFileIn("", path, data, perm)
}

// WriteFileIn is WriteFile with the temporary file in tmpDir, which must
// be on path's file system; "" means path's folder. It is for folders that
// others read as they are written (a dataset's output tree), where even a
// hidden temporary file would be seen.
func WriteFileIn(tmpDir, path string, data []byte, perm fs.FileMode) error {
	if tmpDir == "" {
		tmpDir = filepath.Dir(path)
	}
	var buf [6]byte
	rand.Read(buf[:])
	tmp := filepath.Join(tmpDir, "."+filepath.Base(path)+"."+hex.EncodeToString(buf[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		// The umask may have narrowed perm at creation.
		err = f.Chmod(perm)
	}
	if err = commit(f, err, tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Publish moves tmp, a complete file written by other means (ffmpeg, a
// download), onto path: tmp is fsynced first, since without that a crash
// soon after the rename can leave an empty file under the final name on
// some file systems. tmp must be on path's file system. On failure tmp is
// left where it is, for the caller to remove or resume.
func Publish(tmp, path string) error {
	f, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("publish %s: %w", path, err)
	}
	if err := commit(f, nil, tmp, path); err != nil {
		return fmt.Errorf("publish %s: %w", path, err)
	}
	return nil
}

// commit finishes f, the open temporary file tmp, unless err already
// failed it: fsync, close, rename onto path, fsync path's folder.
func commit(f *os.File, err error, tmp, path string) error {
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a folder, so that the names created or renamed in it
// survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some file systems cannot sync folders; their renames are as durable
	// as they get.
	if err != nil && !errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}
