package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/anonymize-dev/anonymize/internal/atomicfile"
)

// ManifestFile is the manifest's name on a models server, and the name of
// its cached copy in a model folder (which List compares files against).
const ManifestFile = "manifest.json"

// Manifest is the index a models server publishes as manifest.json; see
// models/README.md for the format.
type Manifest struct {
	Models []ManifestEntry `json:"models"`
}

// ManifestEntry is one downloadable model.
type ManifestEntry struct {
	Name string `json:"name"`
	// File is the name to install under. Registry models are always
	// installed under their registry file name, because that is where the
	// program looks; for other models it defaults to Name + ".onnx".
	File string `json:"file,omitempty"`
	// URL is absolute or relative to the manifest; empty means File next
	// to the manifest.
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"` // bytes; 0 when unknown
}

// Find returns the entry called name.
func (m *Manifest) Find(name string) (ManifestEntry, bool) {
	for _, e := range m.Models {
		if e.Name == name {
			return e, true
		}
	}
	return ManifestEntry{}, false
}

// Names lists the entries' names in manifest order.
func (m *Manifest) Names() []string {
	names := make([]string, len(m.Models))
	for i, e := range m.Models {
		names[i] = e.Name
	}
	return names
}

// ParseManifest decodes and checks a manifest. Unknown fields are ignored
// so that servers can add to the format without breaking older clients.
func ParseManifest(data []byte) (*Manifest, error) {
	var raw struct {
		Models *[]ManifestEntry `json:"models"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if raw.Models == nil {
		return nil, errors.New(`no "models" list`)
	}
	m := &Manifest{Models: *raw.Models}
	seen := make(map[string]bool)
	for i := range m.Models {
		e := &m.Models[i]
		if e.Name == "" {
			return nil, fmt.Errorf("model %d has no name", i+1)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("model %q is listed twice", e.Name)
		}
		seen[e.Name] = true
		e.SHA256 = strings.ToLower(e.SHA256)
		if !isSHA256(e.SHA256) {
			return nil, fmt.Errorf("model %q: sha256 %q is not 64 hex digits", e.Name, e.SHA256)
		}
		if e.Size < 0 {
			return nil, fmt.Errorf("model %q: negative size %d", e.Name, e.Size)
		}
		if e.File != "" && !safeFileName(e.File) {
			return nil, fmt.Errorf("model %q: file %q must be a plain file name", e.Name, e.File)
		}
		if e.File == "" && !safeFileName(e.localFile()) {
			return nil, fmt.Errorf("model %q: the name cannot serve as a file name; give a file", e.Name)
		}
	}
	return m, nil
}

// localFile is the name the entry is installed under in a model folder.
func (e ManifestEntry) localFile() string {
	if m, err := Lookup(e.Name); err == nil {
		return m.File
	}
	if e.File != "" {
		return e.File
	}
	return e.Name + ".onnx"
}

// safeFileName rejects names that would let a server write outside the
// model folder or clobber something hidden.
func safeFileName(name string) bool {
	return name != "" && !strings.ContainsAny(name, `/\:`) && !strings.HasPrefix(name, ".") &&
		filepath.Base(name) == name && name != ManifestFile
}

// ResolveManifestURL returns the manifest URL for a --models-url flag value,
// falling back to $ANONYMIZE_MODELS_URL, or "" when neither is set (pulls
// then go to the models' public source). Either may name the server's
// base URL (manifest.json is appended) or the manifest itself (a .json
// path).
func ResolveManifestURL(flagValue string, getenv func(string) string) (string, error) {
	raw := flagValue
	if raw == "" && getenv != nil {
		raw = getenv(EnvModelsURL)
	}
	if raw == "" {
		return "", nil
	}
	return manifestURL(raw)
}

func manifestURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("models server URL %q is not an http:// or https:// URL: fix --models-url or %s", raw, EnvModelsURL)
	}
	if !strings.HasSuffix(u.Path, ".json") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + ManifestFile
		u.RawPath = ""
	}
	return u.String(), nil
}

// writeManifestCache keeps the server's manifest beside the models so that
// `models list` can say whether installed files match it.
func writeManifestCache(dir string, data []byte) error {
	return atomicfile.WriteFile(filepath.Join(dir, ManifestFile), data, 0o644)
}

// readManifestCache returns the cached manifest of dir, or nil when there
// is none.
func readManifestCache(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest cache: %w", err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("manifest cache %s is malformed: %w: delete it, or pull a model again to refresh it", path, err)
	}
	return m, nil
}
