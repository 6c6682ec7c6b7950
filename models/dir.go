package models

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/anonymize-dev/anonymize/internal/digest"
)

// Environment variables that configure where models live and come from.
const (
	EnvModelsDir = "ANONYMIZE_MODELS"
	EnvModelsURL = "ANONYMIZE_MODELS_URL"
)

// Where ResolveDir found the model folder; shown by `models list` and in
// errors, so a user can tell why the program looked where it did.
const (
	SourceFlag  = "--models-dir"
	SourceEnv   = EnvModelsDir
	SourceLocal = "./models"
	SourceCache = "user cache folder"
)

// Folder is a resolved model folder and the rule that chose it (one of
// the Source constants), which messages name so that a user can tell why
// the program looked there.
type Folder struct {
	Dir    string
	Source string
}

// userCacheDir is os.UserCacheDir; tests replace it so that they neither
// depend on nor touch the real cache of whoever runs them.
var userCacheDir = os.UserCacheDir

// ResolveDir picks the model folder: the --models-dir flag, else
// $ANONYMIZE_MODELS, else ./models when it holds at least one .onnx file
// (a checkout where the export scripts wrote their output), else the user
// cache folder. Relative paths are taken from cwd. source names the rule
// that won.
func ResolveDir(flagValue string, getenv func(string) string, cwd string) (dir string, source string) {
	abs := func(p string) string {
		if filepath.IsAbs(p) || cwd == "" {
			return filepath.Clean(p)
		}
		return filepath.Join(cwd, p)
	}
	if flagValue != "" {
		return abs(flagValue), SourceFlag
	}
	if getenv != nil {
		if v := getenv(EnvModelsDir); v != "" {
			return abs(v), SourceEnv
		}
	}
	local := abs("models")
	if hasONNX(local) {
		return local, SourceLocal
	}
	if cache, err := userCacheDir(); err == nil && cache != "" {
		return filepath.Join(cache, "anonymize", "models"), SourceCache
	}
	// No home folder to cache in (a bare container, say): ./models is the
	// only place left that a user can reason about.
	return local, SourceLocal
}

func hasONNX(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if isONNX(e.Name()) && !e.IsDir() {
			return true
		}
	}
	return false
}

func isONNX(name string) bool {
	return strings.EqualFold(filepath.Ext(name), ".onnx")
}

// ModelPath is where the registry model for role lives inside dir; empty
// for a role the registry does not know.
func ModelPath(dir string, role Role) string {
	m, err := ForRole(role)
	if err != nil {
		return ""
	}
	return filepath.Join(dir, m.File)
}

// MissingError reports a registry model that is not in the model folder.
// Its message lists every way to fix that.
type MissingError struct {
	Model  Model
	Path   string // where the file was looked for
	Dir    string
	Source string // how Dir was chosen (see ResolveDir)
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s model %s not found at %s (model folder from %s): "+
		"run `anonymize models pull %s`, or export it with `python3 %s --out %s` (see models/README.md), "+
		"or pass %s PATH",
		e.Model.Role, e.Model.Name, e.Path, e.Source,
		e.Model.Name, e.Model.Export, e.Dir, e.Model.Flag)
}

// Find returns the file to load for role: override when the user named one
// with the role's flag, else the registry file inside dir. dir and source
// are what ResolveDir returned.
func Find(role Role, override, dir, source string) (string, error) {
	m, err := ForRole(role)
	if err != nil {
		return "", err
	}
	if override != "" {
		if err := checkFile(override); errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s %s: no such file; check the path (%s)", m.Flag, override, m.HowToObtain())
		} else if err != nil {
			return "", fmt.Errorf("%s %s: %w", m.Flag, override, err)
		}
		return override, nil
	}
	path := filepath.Join(dir, m.File)
	err = checkFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", &MissingError{Model: m, Path: path, Dir: dir, Source: source}
	}
	if err != nil {
		return "", fmt.Errorf("%s model %s: %w", m.Role, m.Name, err)
	}
	return path, nil
}

// DetectorPath is Find for the person detector.
func DetectorPath(override, dir, source string) (string, error) {
	return Find(RoleDetector, override, dir, source)
}

// PosePath is Find for the pose estimator.
func PosePath(override, dir, source string) (string, error) {
	return Find(RolePose, override, dir, source)
}

func checkFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a folder, not a model file", path)
	}
	return nil
}

// ManifestMatch says how an installed file compares with the cached
// manifest of the models server it may have come from.
type ManifestMatch int

const (
	NoManifest      ManifestMatch = iota // the folder has no manifest cache
	NotInManifest                        // the manifest does not list the file
	ManifestMatches                      // same sha256 as the manifest
	ManifestDiffers                      // different sha256: stale, or exported locally
)

func (m ManifestMatch) String() string {
	switch m {
	case NoManifest:
		return "no manifest"
	case NotInManifest:
		return "not in manifest"
	case ManifestMatches:
		return "matches manifest"
	case ManifestDiffers:
		return "differs from manifest"
	}
	return fmt.Sprintf("ManifestMatch(%d)", int(m))
}

// Installed describes one model file, present or not, in a model folder.
type Installed struct {
	Name     string // registry name; for other files, the file name without .onnx
	Known    bool   // Name is in the registry
	Role     Role   // empty for files outside the registry
	Path     string
	Present  bool
	Size     int64  // only when Present
	SHA256   string // hex, only when Present
	Manifest ManifestMatch
	// Pin is the Hub commit and sha256 this folder recorded when the model
	// was pulled from the Hub; nil when it was not.
	Pin *HubPin
}

// PinMatches reports whether the file is still the one pulled from the Hub.
func (inst Installed) PinMatches() bool { return inst.Pin != nil && inst.Pin.SHA256 == inst.SHA256 }

// List reports every registry model, in registry order, and then every
// other .onnx file in dir. It hashes each file it finds, so it reads them
// in full. A missing dir is not an error: nothing is installed yet.
func List(dir string) ([]Installed, error) {
	manifest, err := readManifestCache(dir)
	if err != nil {
		return nil, err
	}
	lock, err := readHubLock(dir)
	if err != nil {
		return nil, err
	}
	var out []Installed
	registered := make(map[string]bool)
	for _, m := range Registry {
		registered[m.File] = true
		inst := Installed{Name: m.Name, Known: true, Role: m.Role, Path: filepath.Join(dir, m.File)}
		if err := inst.fill(lock); err != nil {
			return nil, err
		}
		if manifest != nil && inst.Present {
			if e, ok := manifest.Find(m.Name); ok {
				inst.Manifest = compareSum(inst.SHA256, e.SHA256)
			} else {
				inst.Manifest = NotInManifest
			}
		}
		out = append(out, inst)
	}
	// Variants are listed once pulled; until then `models list` would
	// call them missing, although nothing needs them.
	for _, m := range Variants {
		registered[m.File] = true
		inst := Installed{Name: m.Name, Known: true, Role: m.Role, Path: filepath.Join(dir, m.File)}
		if err := inst.fill(lock); err != nil {
			return nil, err
		}
		if inst.Present {
			out = append(out, inst)
		}
	}

	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read model folder %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !isONNX(name) || registered[name] {
			continue
		}
		inst := Installed{Name: strings.TrimSuffix(name, filepath.Ext(name)), Path: filepath.Join(dir, name)}
		if err := inst.fill(lock); err != nil {
			return nil, err
		}
		if manifest != nil && inst.Present {
			inst.Manifest = NotInManifest
			for _, me := range manifest.Models {
				if me.localFile() == name {
					inst.Manifest = compareSum(inst.SHA256, me.SHA256)
					break
				}
			}
		}
		out = append(out, inst)
	}
	return out, nil
}

func (inst *Installed) fill(lock *HubLock) error {
	if pin, ok := lock.find(inst.Name); ok && inst.Known {
		inst.Pin = &pin
	}
	sum, size, err := digest.FileSHA256(inst.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	inst.Present, inst.Size, inst.SHA256 = true, size, sum
	return nil
}

func compareSum(have, want string) ManifestMatch {
	if strings.EqualFold(have, want) {
		return ManifestMatches
	}
	return ManifestDiffers
}
