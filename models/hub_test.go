package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

const (
	commitA = "0123456789abcdef0123456789abcdef01234567"
	commitB = "89abcdef0123456789abcdef0123456789abcdef"
)

// fakeHub answers like the Hugging Face Hub: a resolve URL of a file
// stored in LFS answers 302 to a storage host, with the commit, the file's
// sha256 and its size in headers; the storage host serves the bytes, with
// Range support unless its handler says otherwise.
type fakeHub struct {
	t       *testing.T
	hub     *httptest.Server
	storage *httptest.Server

	mu       sync.Mutex
	commit   string            // what main points at; the only commit served
	files    map[string][]byte // path in the repository → bytes at commit
	noEtag   bool              // a mirror that publishes no sha256
	status   int               // when set, the Hub answers every request with it
	store    fileHandler       // nil: serve the file
	resolved []string          // "METHOD rev path" of each request to the Hub
	ranges   []string          // Range of each request to the storage host
	auth     []string          // Authorization seen by the Hub
}

func newFakeHub(t *testing.T, files map[string][]byte) *fakeHub {
	t.Helper()
	h := &fakeHub{t: t, commit: commitA, files: files}
	h.storage = httptest.NewServer(http.HandlerFunc(h.serveStorage))
	h.hub = httptest.NewServer(http.HandlerFunc(h.serveHub))
	t.Cleanup(h.hub.Close)
	t.Cleanup(h.storage.Close)
	return h
}

var resolveRE = regexp.MustCompile(`^/Xenova/detr-resnet-50/resolve/([^/]+)/(.+)$`)

func (h *fakeHub) serveHub(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.auth = append(h.auth, r.Header.Get("Authorization"))
	if h.status != 0 {
		http.Error(w, http.StatusText(h.status), h.status)
		return
	}
	m := resolveRE.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	rev, path := m[1], m[2]
	h.resolved = append(h.resolved, r.Method+" "+rev+" "+path)
	data, ok := h.files[path]
	if !ok || (rev != "main" && rev != h.commit) {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Repo-Commit", h.commit)
	w.Header().Set("ETag", `"`+sha(data)+`"`)
	if !h.noEtag {
		w.Header().Set("X-Linked-Etag", `"`+sha(data)+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
	}
	w.Header().Set("Location", h.storage.URL+"/blobs/"+sha(data)+"?signature=expires-soon")
	w.WriteHeader(http.StatusFound)
}

func (h *fakeHub) serveStorage(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	sum := strings.TrimPrefix(r.URL.Path, "/blobs/")
	var data []byte
	for _, d := range h.files {
		if sha(d) == sum {
			data = d
		}
	}
	n := len(h.ranges)
	h.ranges = append(h.ranges, r.Header.Get("Range"))
	store := h.store
	h.mu.Unlock()
	if data == nil {
		http.NotFound(w, r)
		return
	}
	if store == nil {
		store = serve(data)
	}
	store(h.t, n, w, r)
}

func (h *fakeHub) set(f func(h *fakeHub)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

func (h *fakeHub) log() (resolved, ranges []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.resolved...), append([]string(nil), h.ranges...)
}

func (h *fakeHub) options(dir string, sl *sleeps) PullOptions {
	return PullOptions{Name: testModel, Dir: dir, Hub: HubOptions{URL: h.hub.URL}, retryDelay: time.Microsecond, onRetry: sl.retried}
}

func readLock(t *testing.T, dir string) HubLock {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, HubLockFile))
	if err != nil {
		t.Fatal(err)
	}
	var l HubLock
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestHubPull: with no models server configured, detr-resnet-50 comes
// from the Hub through the storage host it redirects to; the commit main
// pointed at and the file's sha256 are recorded, and a second pull keeps to
// that commit even after main moves, without downloading again.
func TestHubPull(t *testing.T) {
	data := modelData(t, 1<<20+777)
	h := newFakeHub(t, map[string][]byte{"onnx/model.onnx": data})
	dir := filepath.Join(t.TempDir(), "models")
	sl := &sleeps{}

	path, err := Pull(context.Background(), h.options(dir, sl))
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if path != filepath.Join(dir, "detr-resnet-50.onnx") {
		t.Errorf("installed at %s", path)
	}
	assertInstalled(t, path, data)
	lock := readLock(t, dir)
	if len(lock.Models) != 1 {
		t.Fatalf("%s lists %d models: %+v", HubLockFile, len(lock.Models), lock)
	}
	pin := lock.Models[0]
	if pin.Name != testModel || pin.Repo != "Xenova/detr-resnet-50" || pin.Path != "onnx/model.onnx" ||
		pin.Revision != commitA || pin.SHA256 != sha(data) || pin.Size != int64(len(data)) || pin.Pulled.IsZero() {
		t.Errorf("recorded %+v", pin)
	}
	resolved, ranges := h.log()
	// main is asked only for its commit; the file comes from the commit.
	want := []string{"HEAD main onnx/model.onnx", "HEAD " + commitA + " onnx/model.onnx", "GET " + commitA + " onnx/model.onnx"}
	if strings.Join(resolved, "|") != strings.Join(want, "|") {
		t.Errorf("the Hub saw %q, want %q", resolved, want)
	}
	if len(ranges) != 1 {
		t.Errorf("storage requests %q, want one", ranges)
	}

	// main moves on: the folder keeps the commit it pinned.
	h.set(func(h *fakeHub) { h.commit = commitB })
	if _, err := Pull(context.Background(), h.options(dir, sl)); err == nil || !strings.Contains(err.Error(), "resolve/"+commitA+"/onnx/model.onnx") {
		t.Fatalf("after main moved, Pull = %v; want it to ask for the pinned commit %s (which this fake no longer serves)", err, commitA)
	}
	h.set(func(h *fakeHub) { h.commit = commitA })
	if _, err := Pull(context.Background(), h.options(dir, sl)); err != nil {
		t.Fatalf("second Pull: %v", err)
	}
	if _, ranges := h.log(); len(ranges) != 1 {
		t.Errorf("an installed model was downloaded again: storage requests %q", ranges)
	}
	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !list[0].PinMatches() || list[0].Pin.Revision != commitA {
		t.Errorf("List()[0] = %+v, want the file matching its Hub pin", list[0])
	}
}

// TestHubPullResumes: a connection dropped halfway is resumed with a Range
// request to the storage host, reached again through the Hub (whose
// signed storage URLs expire).
func TestHubPullResumes(t *testing.T) {
	data := modelData(t, 2<<20)
	cut := 1<<20 + 13
	h := newFakeHub(t, map[string][]byte{"onnx/model.onnx": data})
	h.set(func(h *fakeHub) { h.store = sequence(dropAt(data, cut), serve(data)) })
	dir := t.TempDir()
	sl := &sleeps{}
	opts := h.options(dir, sl)
	opts.Hub.Revision = commitA
	path, err := Pull(context.Background(), opts)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	assertInstalled(t, path, data)
	resolved, ranges := h.log()
	if want := []string{"", fmt.Sprintf("bytes=%d-", cut)}; strings.Join(ranges, "|") != strings.Join(want, "|") {
		t.Errorf("storage saw ranges %q, want %q", ranges, want)
	}
	gets := 0
	for _, r := range resolved {
		if strings.HasPrefix(r, "GET "+commitA) {
			gets++
		}
	}
	if gets != 2 {
		t.Errorf("the Hub saw %q: want each attempt to go through it", resolved)
	}
	if sl.count() != 1 {
		t.Errorf("%d back-offs, want 1", sl.count())
	}
}

// TestHubPullRefuses: what the Hub says is checked before a byte is
// written, and a file that changed under a commit already pulled is
// refused unless --sha256 vouches for it.
func TestHubPullRefuses(t *testing.T) {
	data := modelData(t, 300_000)
	changed := modelData(t, 300_001)
	tests := []struct {
		name    string
		setup   func(t *testing.T, h *fakeHub, opts *PullOptions)
		wantErr string
	}{
		{
			name: "file changed under the recorded commit",
			setup: func(t *testing.T, h *fakeHub, opts *PullOptions) {
				if _, err := Pull(context.Background(), *opts); err != nil {
					t.Fatalf("first Pull: %v", err)
				}
				os.Remove(filepath.Join(opts.Dir, "detr-resnet-50.onnx"))
				h.set(func(h *fakeHub) { h.files["onnx/model.onnx"] = changed })
			},
			wantErr: "the file changed under a commit that cannot change, so it is refused. If you trust the new file, pass --sha256 " + sha(changed),
		},
		{
			name:    "--sha256 disagrees with the Hub",
			setup:   func(t *testing.T, h *fakeHub, opts *PullOptions) { opts.SHA256 = sha(changed) },
			wantErr: "not the " + sha(changed) + " given with --sha256; nothing was downloaded",
		},
		{
			name: "no sha256 published",
			setup: func(t *testing.T, h *fakeHub, opts *PullOptions) {
				h.set(func(h *fakeHub) { h.noEtag = true; h.files["onnx/model.onnx"] = changed })
			},
			wantErr: "did not publish a sha256",
		},
		{
			name:    "unknown commit",
			setup:   func(t *testing.T, h *fakeHub, opts *PullOptions) { opts.Hub.Revision = commitB },
			wantErr: "404 Not Found: the repository, the commit or the file is not there",
		},
		{
			name:    "branch as revision",
			setup:   func(t *testing.T, h *fakeHub, opts *PullOptions) { opts.Hub.Revision = "main" },
			wantErr: `--revision "main" is not a commit hash`,
		},
		{
			name: "gated",
			setup: func(t *testing.T, h *fakeHub, opts *PullOptions) {
				h.set(func(h *fakeHub) { h.status = http.StatusUnauthorized })
			},
			wantErr: "401 Unauthorized: the Hub refused access; for a gated or private repository set HF_TOKEN",
		},
		{
			name: "proxy wants credentials",
			setup: func(t *testing.T, h *fakeHub, opts *PullOptions) {
				h.set(func(h *fakeHub) { h.status = http.StatusProxyAuthRequired })
			},
			wantErr: "the proxy wants credentials",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t, map[string][]byte{"onnx/model.onnx": data})
			dir := t.TempDir()
			opts := h.options(dir, &sleeps{})
			tt.setup(t, h, &opts)
			_, rangesBefore := h.log()
			_, err := Pull(context.Background(), opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Pull error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			if _, ranges := h.log(); len(ranges) != len(rangesBefore) {
				t.Errorf("the storage host was asked for the file (%q) although the pull was refused", ranges[len(rangesBefore):])
			}
			if _, err := os.Stat(filepath.Join(dir, "detr-resnet-50.onnx")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused model is installed (stat: %v)", err)
			}
		})
	}

	// --sha256 vouches for the changed file.
	h := newFakeHub(t, map[string][]byte{"onnx/model.onnx": data})
	dir := t.TempDir()
	opts := h.options(dir, &sleeps{})
	if _, err := Pull(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	h.set(func(h *fakeHub) { h.files["onnx/model.onnx"] = changed })
	opts.SHA256 = sha(changed)
	path, err := Pull(context.Background(), opts)
	if err != nil {
		t.Fatalf("Pull --sha256 of the changed file: %v", err)
	}
	assertInstalled(t, path, changed)
	if pin := readLock(t, dir).Models[0]; pin.SHA256 != sha(changed) {
		t.Errorf("recorded %+v after pulling the changed file", pin)
	}
}

// TestHubPullToken: HF_TOKEN goes to the Hub as a bearer token.
func TestHubPullToken(t *testing.T) {
	data := modelData(t, 100_000)
	h := newFakeHub(t, map[string][]byte{"onnx/model.onnx": data})
	opts := h.options(t.TempDir(), &sleeps{})
	opts.Hub.Token = "hf_secret"
	if _, err := Pull(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.auth) == 0 {
		t.Fatal("the Hub saw no request")
	}
	for i, a := range h.auth {
		if a != "Bearer hf_secret" {
			t.Errorf("Hub request %d had Authorization %q", i, a)
		}
	}
}

// TestHubUnreachable: a host that cannot reach the Hub is told the exact
// URL to fetch elsewhere and how to install the file by hand, which then
// works with the same checks.
func TestHubUnreachable(t *testing.T) {
	data := modelData(t, 100_000)
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	dir := t.TempDir()
	sl := &sleeps{}
	opts := PullOptions{Name: testModel, Dir: dir, Hub: HubOptions{URL: url, Revision: commitA}, retryDelay: time.Microsecond, onRetry: sl.retried}
	_, err := Pull(context.Background(), opts)
	want := "fetch " + url + "/Xenova/detr-resnet-50/resolve/" + commitA + "/onnx/model.onnx elsewhere, copy it here and run " +
		"`anonymize models pull detr-resnet-50 --file FILE --sha256 SHA256`"
	if err == nil || !strings.Contains(err.Error(), "could not reach the Hugging Face Hub") || !strings.Contains(err.Error(), want) {
		t.Fatalf("Pull error = %v, want one saying %q", err, want)
	}
	if sl.count() == 0 {
		t.Error("a refused connection was not retried")
	}

	file := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	opts = PullOptions{Name: testModel, Dir: dir, File: file}
	if _, err := Pull(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "pass --sha256") {
		t.Fatalf("--file without a hash to check: %v", err)
	}
	opts.SHA256 = sha(modelData(t, 100_001))
	if _, err := Pull(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "it is not the file to install") {
		t.Fatalf("--file with another file's hash: %v", err)
	}
	opts.SHA256 = strings.ToUpper(sha(data))
	path, err := Pull(context.Background(), opts)
	if err != nil {
		t.Fatalf("--file: %v", err)
	}
	assertInstalled(t, path, data)
}

// xenovaStandIn declares what the transformers.js exports of DETR declare
// (pixel_mask fixed at 64x64, symbolic batch and image sides) in the given
// precision, and computes nothing: the contract check reads only the
// declarations.
func xenovaStandIn(t *testing.T, dtype onnxgraph.DataType) []byte {
	t.Helper()
	g := onnxgraph.New("xenova-detr-stand-in")
	batch := onnxgraph.Param("batch_size")
	x := g.Input(DETRPixelValues, dtype, batch, onnxgraph.Param("num_channels"), onnxgraph.Param("height"), onnxgraph.Param("width"))
	g.Input(DETRPixelMask, onnxgraph.Int64, batch, onnxgraph.Fixed(64), onnxgraph.Fixed(64))
	g.Node("Identity", []string{x}, []string{DETRLogits})
	g.Node("Identity", []string{x}, []string{DETRPredBoxes})
	g.Output(DETRLogits, dtype, batch, onnxgraph.Param("num_queries"), onnxgraph.Fixed(92))
	g.Output(DETRPredBoxes, dtype, batch, onnxgraph.Param("num_queries"), onnxgraph.Fixed(4))
	data, err := g.Marshal(17)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestHubVariantsFitContract: the fp32 and 8-bit exports declare DETR's
// contract and install; the fp16 one declares float16 tensors, is not
// offered, and is refused at pull time if a source serves it instead.
func TestHubVariantsFitContract(t *testing.T) {
	fp32 := xenovaStandIn(t, onnxgraph.Float32)
	fp16 := xenovaStandIn(t, onnxgraph.Float16)
	h := newFakeHub(t, map[string][]byte{"onnx/model.onnx": fp32, "onnx/model_quantized.onnx": fp32})
	for _, name := range []string{"detr-resnet-50", "detr-resnet-50-int8"} {
		dir := t.TempDir()
		opts := h.options(dir, &sleeps{})
		opts.Name = name
		path, err := Pull(context.Background(), opts)
		if err != nil {
			t.Fatalf("pull %s: %v", name, err)
		}
		m, _ := Lookup(name)
		if filepath.Base(path) != m.File {
			t.Errorf("%s installed as %s", name, path)
		}
	}
	for _, m := range append(Registry, Variants...) {
		if m.Hub != nil && strings.Contains(m.Hub.Path, "fp16") {
			t.Errorf("%s offers %s, whose tensors are float16", m.Name, m.Hub.Path)
		}
	}

	h.set(func(h *fakeHub) { h.files["onnx/model.onnx"] = fp16 })
	dir := t.TempDir()
	opts := h.options(dir, &sleeps{})
	opts.Hub.Revision = commitA
	_, err := Pull(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), `"pixel_values" has type float16, want float32`) || !strings.Contains(err.Error(), "was not installed") {
		t.Fatalf("pull of an fp16 export = %v, want a refusal naming float16", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != HubLockFile {
			t.Errorf("%s left in the model folder", e.Name())
		}
	}
}

// TestHubFiles: every file the program pulls from the Hub is named
// exactly: a repository, a path to an .onnx file, and either no revision
// yet (pinned per folder at the first pull) or a full commit hash, never a
// branch or tag.
func TestHubFiles(t *testing.T) {
	repoRE := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	hubModels := 0
	files := map[string]bool{}
	for _, m := range append(Registry, Variants...) {
		if m.Hub == nil {
			continue
		}
		hubModels++
		f := m.Hub
		if !repoRE.MatchString(f.Repo) || !strings.HasSuffix(f.Path, ".onnx") || strings.Contains(f.Path, "..") ||
			strings.HasPrefix(f.Path, "/") || f.License == "" {
			t.Errorf("%s: Hub file %+v", m.Name, *f)
		}
		if f.Revision != "" && !IsCommit(f.Revision) {
			t.Errorf("%s: revision %q is not a commit hash", m.Name, f.Revision)
		}
		if files[f.Repo+"/"+f.Path] {
			t.Errorf("%s: %s/%s is pulled by two models", m.Name, f.Repo, f.Path)
		}
		files[f.Repo+"/"+f.Path] = true
		if got := f.URL(DefaultHubURL, commitA); got != "https://huggingface.co/"+f.Repo+"/resolve/"+commitA+"/"+f.Path {
			t.Errorf("%s: URL %s", m.Name, got)
		}
	}
	if hubModels == 0 {
		t.Fatal("no model is pulled from the Hub")
	}
	if m, _ := Lookup("detr-resnet-50"); m.Hub == nil || m.Hub.Path != "onnx/model.onnx" {
		t.Errorf("detr-resnet-50 is not the transformers.js export's onnx/model.onnx: %+v", m.Hub)
	}
	for _, v := range Variants {
		base, err := Lookup(v.VariantOf)
		if err != nil || base.VariantOf != "" || base.Role != v.Role || base.Flag != v.Flag {
			t.Errorf("variant %s of %q: base %+v, %v", v.Name, v.VariantOf, base, err)
		}
	}
}
