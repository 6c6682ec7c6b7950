package batch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anonymize-dev/anonymize/video"
)

// DefaultExtensions are the file extensions selected when no --include is
// given, matched case-insensitively: cameras write .MP4 and .mov alike.
var DefaultExtensions = []string{
	".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg",
	".wmv", ".flv", ".ts", ".mts", ".m2ts", ".3gp",
}

// OutputExtensions are the containers the encoder writes (as
// video.CheckPaths accepts them); an input with another extension gets
// DefaultOutputExt instead.
var OutputExtensions = []string{".mp4", ".m4v", ".mov", ".mkv", ".avi"}

// DefaultOutputExt replaces an input extension the encoder cannot write.
const DefaultOutputExt = ".mp4"

// stateDirName is the folder under OUT_DIR that holds the batch's own
// files; no output may be mapped into it.
const stateDirName = ".anonymize"

// DiscoverOptions selects the videos of a folder tree.
type DiscoverOptions struct {
	InDir  string
	OutDir string
	// Include and Exclude are glob patterns matched, case-insensitively,
	// against both the slash-separated path relative to InDir and the base
	// name; "**" matches any number of folders. An empty Include selects
	// DefaultExtensions. An Exclude pattern that matches a folder skips
	// the whole folder.
	Include []string
	Exclude []string
}

// Item is one input video and where its output goes.
type Item struct {
	Rel     string // input path relative to InDir, slash-separated
	Input   string // input path on disk
	OutRel  string // output path relative to OutDir, slash-separated
	Output  string // output path on disk
	Size    int64  // input size at discovery
	ModTime time.Time
}

// ErrUsage marks errors in what the user asked for (bad patterns, OUT_DIR
// inside IN_DIR's reach, a bad shard), as opposed to the batch failing.
var ErrUsage = errors.New("usage error")

type usageError struct{ err error }

func (e usageError) Error() string        { return e.err.Error() }
func (e usageError) Unwrap() error        { return e.err }
func (e usageError) Is(target error) bool { return target == ErrUsage }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Discover lists the videos under opts.InDir that the patterns select, in
// sorted order of their relative paths, each with its output path under
// opts.OutDir. Two inputs that would be written to the same output are an
// error naming both.
func Discover(opts DiscoverOptions) ([]Item, error) {
	realIn, realOut, err := checkDirs(opts.InDir, opts.OutDir)
	if err != nil {
		return nil, err
	}
	include, err := compilePatterns("--include", opts.Include)
	if err != nil {
		return nil, err
	}
	exclude, err := compilePatterns("--exclude", opts.Exclude)
	if err != nil {
		return nil, err
	}
	var items []Item
	err = filepath.WalkDir(realIn, func(p string, d fs.DirEntry, err error) error {
		if p == realIn {
			if err != nil {
				return fmt.Errorf("read input folder %s: %w", opts.InDir, err)
			}
			return nil
		}
		relOS, rerr := filepath.Rel(realIn, p)
		if rerr != nil {
			return rerr
		}
		rel := filepath.ToSlash(relOS)
		input := filepath.Join(opts.InDir, relOS)
		if err != nil {
			return fmt.Errorf("read %s: %w; fix its permissions or leave it out with --exclude %q", input, err, rel)
		}
		if d.IsDir() {
			// realIn has no symlinks and WalkDir does not enter symlinked
			// folders, so p is a real path and compares with realOut.
			if p == realOut || matchAny(exclude, rel) {
				return filepath.SkipDir
			}
			return nil
		}
		var st fs.FileInfo
		switch {
		case d.Type().IsRegular():
			st, err = d.Info()
		case d.Type()&fs.ModeSymlink != 0:
			st, err = os.Stat(p)
			if err == nil && !st.Mode().IsRegular() {
				return nil // a symlinked folder (not followed) or device
			}
			// A broken link is selected like a file, so that it shows as
			// failed rather than silently missing from the output.
		default:
			return nil // fifo, socket, device
		}
		if !selected(include, exclude, rel) || video.IsTemporary(rel) {
			// A hidden partial file of an `anonymize video` run that was
			// killed is never a video to process.
			return nil
		}
		it := Item{Rel: rel, Input: input}
		if err == nil {
			it.Size, it.ModTime = st.Size(), st.ModTime()
		}
		it.OutRel = outputRel(rel)
		it.Output = filepath.Join(opts.OutDir, filepath.FromSlash(it.OutRel))
		items = append(items, it)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Rel < items[j].Rel })
	if err := checkCollisions(items); err != nil {
		return nil, err
	}
	return items, nil
}

// checkDirs resolves both folders to symlink-free absolute paths and
// refuses layouts where the output would be read back as input.
func checkDirs(in, out string) (realIn, realOut string, err error) {
	if in == "" || out == "" {
		return "", "", usagef("both IN_DIR and OUT_DIR are needed")
	}
	st, err := os.Stat(in)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", usagef("input folder %s does not exist", in)
	case err != nil:
		return "", "", fmt.Errorf("input folder %s: %w", in, err)
	case !st.IsDir():
		return "", "", usagef("input %s is not a folder; use `anonymize video` for one file", in)
	}
	if realIn, err = realPath(in); err != nil {
		return "", "", fmt.Errorf("input folder %s: %w", in, err)
	}
	if realOut, err = realPath(out); err != nil {
		return "", "", fmt.Errorf("output folder %s: %w", out, err)
	}
	switch {
	case realOut == realIn:
		return "", "", usagef("OUT_DIR %s is IN_DIR; the outputs must go to another folder", out)
	case within(realIn, realOut):
		return "", "", usagef("IN_DIR %s lies inside OUT_DIR %s; choose an OUT_DIR outside the input tree", in, out)
	}
	return realIn, realOut, nil
}

// realPath returns p absolute and with symlinks resolved; the part of p
// that does not exist yet (a new OUT_DIR) is appended as written.
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		r, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether p lies strictly inside dir.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// outputRel maps an input path to its output path: same folders and name,
// and the extension kept when the encoder writes that container.
func outputRel(rel string) string {
	ext := path.Ext(rel)
	if slices.Contains(OutputExtensions, strings.ToLower(ext)) {
		return rel
	}
	return strings.TrimSuffix(rel, ext) + DefaultOutputExt
}

func checkCollisions(items []Item) error {
	byOut := map[string][]string{}
	var outs []string
	for _, it := range items {
		if first, _, _ := strings.Cut(it.OutRel, "/"); first == stateDirName {
			return usagef("%s would be written inside OUT_DIR/%s, which holds the batch's state; leave it out with --exclude", it.Rel, stateDirName)
		}
		if _, ok := byOut[it.OutRel]; !ok {
			outs = append(outs, it.OutRel)
		}
		byOut[it.OutRel] = append(byOut[it.OutRel], it.Rel)
	}
	var msgs []string
	for _, o := range outs {
		if ins := byOut[o]; len(ins) > 1 {
			msgs = append(msgs, fmt.Sprintf("%s would all be written to %s", strings.Join(ins, " and "), o))
		}
	}
	if len(msgs) > 0 {
		return usagef("inputs collide in OUT_DIR: %s; leave all but one of each out with --exclude, or rename them",
			strings.Join(msgs, "; "))
	}
	return nil
}

// compilePatterns validates the patterns and lowercases them for
// case-insensitive matching.
func compilePatterns(flag string, pats []string) ([]string, error) {
	out := make([]string, 0, len(pats))
	for _, p := range pats {
		q := strings.Trim(strings.ToLower(filepath.ToSlash(p)), "/")
		if q == "" {
			return nil, usagef("%s %q: empty pattern", flag, p)
		}
		for _, seg := range strings.Split(q, "/") {
			if _, err := path.Match(seg, ""); err != nil {
				return nil, usagef("%s %q: malformed glob pattern (check [ ] and \\ escapes)", flag, p)
			}
		}
		out = append(out, q)
	}
	return out, nil
}

func selected(include, exclude []string, rel string) bool {
	if len(include) == 0 {
		if !slices.Contains(DefaultExtensions, strings.ToLower(path.Ext(rel))) {
			return false
		}
	} else if !matchAny(include, rel) {
		return false
	}
	return !matchAny(exclude, rel)
}

// matchAny reports whether a pattern matches rel or its base name.
func matchAny(pats []string, rel string) bool {
	rel = strings.ToLower(rel)
	relSegs := strings.Split(rel, "/")
	base := relSegs[len(relSegs)-1:]
	for _, p := range pats {
		ps := strings.Split(p, "/")
		if matchSegments(ps, relSegs) || matchSegments(ps, base) {
			return true
		}
	}
	return false
}

// matchSegments matches path segments against pattern segments, where a
// "**" segment stands for any number of segments (including none).
func matchSegments(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			pat = pat[1:]
			if len(pat) == 0 {
				return true
			}
			for i := range len(segs) + 1 {
				if matchSegments(pat, segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}
