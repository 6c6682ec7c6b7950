package video

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/anonymize-dev/anonymize/internal/atomicfile"
)

// userError is an error whose message is written for the person running
// the tool while still matching the underlying cause with errors.Is (for
// example fs.ErrNotExist or fs.ErrPermission).
type userError struct {
	msg   string
	cause error
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.cause }

func userErrorf(cause error, format string, args ...any) error {
	return &userError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// checkInput makes sure path names a readable regular file and returns its
// FileInfo.
func checkInput(path string) (fs.FileInfo, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, userErrorf(err, "input %s does not exist", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, userErrorf(err, "cannot read %s: permission denied", path)
	case err != nil:
		return nil, fmt.Errorf("input %s: %w", path, err)
	case st.IsDir():
		return nil, userErrorf(nil, "input %s is a directory; pass a video file", path)
	case !st.Mode().IsRegular():
		return nil, userErrorf(nil, "input %s is not a regular file; pass a video file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, userErrorf(err, "cannot read %s: permission denied", path)
		}
		return nil, fmt.Errorf("input %s: %w", path, err)
	}
	f.Close()
	return st, nil
}

// outputExts lists the output containers the encoders can write, with H.264
// (or MPEG-4 part 2 for the OpenCV fallback) video.
var outputExts = []string{".mp4", ".m4v", ".mov", ".mkv", ".avi"}

// ErrUnsupportedOutput marks an output path whose extension names no
// container the encoder writes: a mistake on the command line.
var ErrUnsupportedOutput = errors.New("unsupported output container")

// CheckOutputExt makes sure output's extension names a container the
// encoders write; the error matches ErrUnsupportedOutput.
func CheckOutputExt(output string) error {
	ext := strings.ToLower(filepath.Ext(output))
	if !slices.Contains(outputExts, ext) {
		what := "has no file extension"
		if ext != "" {
			what = fmt.Sprintf("has unsupported extension %s", ext)
		}
		return userErrorf(ErrUnsupportedOutput, "output %s %s; name it with one of %s", output, what, strings.Join(outputExts, ", "))
	}
	return nil
}

// CheckPaths validates an input/output pair before any work starts, so that
// a long run does not fail at the very end: the input must be an existing
// regular file; the output must not be the input (even with overwrite, and
// also when the two paths are links to the same file), must not exist unless
// overwrite is set, must have a supported extension, and its folder must
// exist and be writable.
func CheckPaths(input, output string, overwrite bool) error {
	inSt, err := checkInput(input)
	if err != nil {
		return err
	}
	if output == "" {
		return errors.New("no output path given")
	}
	if err := CheckOutputExt(output); err != nil {
		return err
	}
	absIn, err1 := filepath.Abs(input)
	absOut, err2 := filepath.Abs(output)
	sameName := err1 == nil && err2 == nil && absIn == absOut
	outSt, err := os.Stat(output)
	switch {
	case sameName || (err == nil && os.SameFile(inSt, outSt)):
		return fmt.Errorf("output %s is the input file; never write to the input: choose another output path", output)
	case err == nil && outSt.IsDir():
		return fmt.Errorf("output %s is a directory; give a file name such as %s", output, filepath.Join(output, "anonymized.mp4"))
	case err == nil && !overwrite:
		return userErrorf(fs.ErrExist, "output %s exists; pass --overwrite to replace it", output)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("output %s: %w", output, err)
	}
	return checkWritableDir(filepath.Dir(output))
}

// checkWritableDir proves dir is writable by creating and removing a file in
// it; permission bits alone do not tell (ACLs, read-only mounts, root).
func checkWritableDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return userErrorf(err, "output folder %s does not exist; create it first", dir)
	case err != nil:
		return fmt.Errorf("output folder %s: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("output folder %s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".anonymize-writecheck-*")
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return userErrorf(fs.ErrPermission, "cannot write to %s: permission denied", dir)
		}
		return fmt.Errorf("cannot write to %s: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("cannot write to %s: removing test file: %w", dir, err)
	}
	return nil
}

// tempFile is the hidden file an encoder writes before the final rename.
// It is locked (flock) for as long as it is written, so that a later run
// tells a file some live process is writing from one that a killed
// process left behind.
type tempFile struct {
	name string
	lock *os.File // holds the lock; nil once released
}

// tempMarker is what names a temporary file: ".OUT.anonymize-<16 hex>.EXT".
const tempMarker = ".anonymize-"

// IsTemporary reports whether name (a path or a base name) is a temporary
// file of an encoder, which is never a finished video: batch runs leave
// them out of their inputs.
func IsTemporary(name string) bool {
	base := filepath.Base(name)
	if !strings.HasPrefix(base, ".") {
		return false
	}
	i := strings.LastIndex(base, tempMarker)
	if i < 1 {
		return false
	}
	id := strings.TrimSuffix(base[i+len(tempMarker):], filepath.Ext(base))
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// createTemp creates the empty, hidden, locked file an encoder writes to
// before the final rename. It lives beside output (rename is only atomic
// within one file system), or in tempDir when given (which must be on
// output's file system: batch runs keep partial files out of the output
// tree that way, and clear them themselves), and keeps output's extension
// so that ffmpeg and OpenCV pick the right container from the name. The
// file is created with mode 0666 so the umask, not this package, decides
// the final permissions.
//
// Beside output, it first removes the partial files of earlier runs for
// the same output that were killed before they could (SIGKILL, a crash,
// a power cut), and refuses to start while another live run writes that
// output.
func createTemp(output, tempDir string) (*tempFile, error) {
	dir, base := filepath.Split(output)
	if tempDir != "" {
		dir = tempDir
	} else if err := removeStaleTemps(output); err != nil {
		return nil, err
	}
	ext := filepath.Ext(base)
	var buf [8]byte
	for range 100 {
		if _, err := rand.Read(buf[:]); err != nil {
			return nil, err
		}
		name := filepath.Join(dir, "."+base+tempMarker+hex.EncodeToString(buf[:])+ext)
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return nil, userErrorf(err, "cannot write to %s: permission denied", filepath.Clean(dir))
			}
			return nil, fmt.Errorf("create temporary output beside %s: %w", output, err)
		}
		if err := lockFile(f, false); err != nil {
			f.Close()
			os.Remove(name)
			return nil, fmt.Errorf("lock temporary output %s: %w", name, err)
		}
		return &tempFile{name: name, lock: f}, nil
	}
	return nil, fmt.Errorf("create temporary output beside %s: too many name collisions", output)
}

// tempGlob matches the temporary files an encoder for output creates
// beside it.
func tempGlob(output string) string {
	dir, base := filepath.Split(output)
	return filepath.Join(dir, "."+base+tempMarker+"*"+filepath.Ext(base))
}

// removeStaleTemps removes the temporary files for output that nobody
// holds locked, and fails if a live process holds one.
func removeStaleTemps(output string) error {
	matches, err := filepath.Glob(tempGlob(output))
	if err != nil {
		return nil // only a malformed pattern fails, and then nothing matches
	}
	for _, m := range matches {
		if !IsTemporary(m) {
			continue
		}
		f, err := os.OpenFile(m, os.O_RDONLY, 0)
		if err != nil {
			continue // gone meanwhile, or not ours to read
		}
		if err := lockFile(f, true); err != nil {
			f.Close()
			if errors.Is(err, errLocked) {
				return fmt.Errorf("another anonymize run is writing %s (its partial file %s is in use); wait for it to finish or choose another output",
					output, filepath.Base(m))
			}
			continue
		}
		// Unlocked: whoever wrote it died. Remove it while holding the
		// lock, so that no run takes it for live meanwhile.
		os.Remove(m)
		f.Close()
	}
	return nil
}

// commit publishes the file as output (atomicfile.Publish). On failure
// the file is removed.
func (t *tempFile) commit(output string) error {
	if err := atomicfile.Publish(t.name, output); err != nil {
		t.remove()
		return fmt.Errorf("move finished video to %s: %w", output, err)
	}
	t.release()
	return nil
}

// remove deletes the file, then releases the lock: a run that sees the
// file must find it locked.
func (t *tempFile) remove() error {
	err := os.Remove(t.name)
	t.release()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove temporary output: %w", err)
	}
	return nil
}

func (t *tempFile) release() {
	if t.lock != nil {
		t.lock.Close()
		t.lock = nil
	}
}
