package models

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/anonymize-dev/anonymize/internal/atomicfile"
	"github.com/anonymize-dev/anonymize/internal/digest"
)

// alreadyInstalled reports whether final already holds the file with
// sha256 want, so that a pull need not download it again.
func alreadyInstalled(d *downloader, name, final, want string) (bool, error) {
	sum, size, err := digest.FileSHA256(final)
	switch {
	case err == nil && sum == want:
		d.log.Info("already installed", "model", name, "path", final)
		d.report(size, size)
		return true, nil
	case err == nil:
		d.log.Info("installed file differs from the expected one; downloading again",
			"model", name, "path", final, "sha256", sum, "want", want)
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("check installed model: %w", err)
	}
	return false, nil
}

// installPart moves a complete, verified download into place. The right
// bytes (the sha256 matched) may still be the wrong model: a manifest that
// lists a pose model as the detector, an export with other tensor names, a
// half-precision variant. Such a file is removed, never installed where
// the program would load it; refused words the error for its source.
func installPart(d *downloader, name, part, final string, refused func(error) error) error {
	if m, err := Lookup(name); err == nil {
		if err := m.Contract.CheckFile(part); err != nil {
			os.Remove(part)
			return refused(err)
		}
	}
	if err := atomicfile.Publish(part, final); err != nil {
		os.Remove(part)
		return fmt.Errorf("install %s: %w", final, err)
	}
	d.log.Info("installed", "model", name, "path", final)
	return nil
}

// roleOf names the pipeline slot of a registry model, for messages.
func roleOf(name string) string {
	if m, err := Lookup(name); err == nil {
		return string(m.Role)
	}
	return "model"
}

// installLocal installs opts.File, a model fetched by hand, as model
// opts.Name: with the sha256 that --sha256 pins, or else the one this
// folder recorded at an earlier pull from the Hub, and the model's
// contract.
func installLocal(opts PullOptions) (string, error) {
	m, err := Lookup(opts.Name)
	if err != nil {
		return "", fmt.Errorf("--file installs a registry model: %w", err)
	}
	want := opts.SHA256
	if want == "" {
		lock, err := readHubLock(opts.Dir)
		if err != nil {
			return "", err
		}
		if pin, ok := lock.find(m.Name); ok {
			want = pin.SHA256
		}
	}
	if want == "" {
		return "", fmt.Errorf("nothing to check %s against: pass --sha256 with the sha256 of the file you meant to fetch "+
			"(the Hub shows it on the file's page)", opts.File)
	}
	sum, _, err := digest.FileSHA256(opts.File)
	if err != nil {
		return "", err
	}
	if sum != want {
		return "", fmt.Errorf("%s has sha256 %s, not the expected %s: it is not the file to install (a truncated or different download?)",
			opts.File, sum, want)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return "", fmt.Errorf("create model folder: %w", err)
	}
	final := filepath.Join(opts.Dir, m.File)
	part := final + ".part"
	if err := copyFile(opts.File, part); err != nil {
		return "", err
	}
	d := newDownloader(opts)
	err = installPart(d, m.Name, part, final, func(err error) error {
		return fmt.Errorf("%s is not a model the program can run as its %s, so it was not installed: %w", opts.File, m.Role, err)
	})
	return final, err
}

func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return out.Sync()
}
