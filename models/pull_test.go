package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

const testModel = "detr-resnet-50"

// modelData is a detector model that fits the DETR contract, made exactly
// n bytes long with reproducible noise in its
// doc_string: a download of the size of a real model, which pull's
// contract check accepts.
func modelData(t *testing.T, n int) []byte {
	t.Helper()
	base := detectorModel(t, onnxgraph.Param("batch"))
	const docString = 6 // ModelProto.doc_string
	pad := n - len(base) - 1
	for pad > 0 && 1+protowire.SizeVarint(uint64(pad))+pad+len(base) > n {
		pad--
	}
	if pad <= 0 || len(base)+1+protowire.SizeVarint(uint64(pad))+pad != n {
		t.Fatalf("modelData(%d): cannot pad the %d-byte detector to that size", n, len(base))
	}
	r := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	noise := make([]byte, pad)
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	b := protowire.AppendTag(append([]byte(nil), base...), docString, protowire.BytesType)
	return protowire.AppendBytes(b, noise)
}

// detectorModel declares DETR's inputs and outputs (batch as given) and
// computes nothing worth running: pull only reads what it declares.
func detectorModel(t *testing.T, batch onnxgraph.Dim) []byte {
	t.Helper()
	g := onnxgraph.New("detr-contract")
	x := g.Input(DETRPixelValues, onnxgraph.Float32, batch, onnxgraph.Fixed(3), onnxgraph.Param("height"), onnxgraph.Param("width"))
	g.Input(DETRPixelMask, onnxgraph.Int64, batch, onnxgraph.Param("height"), onnxgraph.Param("width"))
	g.Node("Identity", []string{x}, []string{DETRLogits})
	g.Node("Identity", []string{x}, []string{DETRPredBoxes})
	g.Output(DETRLogits, onnxgraph.Float32, batch, onnxgraph.Fixed(100), onnxgraph.Fixed(92))
	g.Output(DETRPredBoxes, onnxgraph.Float32, batch, onnxgraph.Fixed(100), onnxgraph.Fixed(4))
	data, err := g.Marshal(17)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileHandler answers the n-th (from 0) request for the model file.
type fileHandler func(t *testing.T, n int, w http.ResponseWriter, r *http.Request)

// serve answers like an ordinary static file server (Range supported).
func serve(data []byte) fileHandler {
	return func(t *testing.T, _ int, w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "model.onnx", time.Time{}, bytes.NewReader(data))
	}
}

// ignoreRange answers every request with the whole file, as servers
// without range support do.
func ignoreRange(data []byte) fileHandler {
	return func(t *testing.T, _ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data)
	}
}

func status(code int) fileHandler {
	return func(t *testing.T, _ int, w http.ResponseWriter, r *http.Request) {
		http.Error(w, http.StatusText(code), code)
	}
}

// dropAt promises the rest of the file but closes the connection once the
// client holds cut bytes; a request that starts at or past cut is dropped
// before any answer.
func dropAt(data []byte, cut int) fileHandler {
	return func(t *testing.T, _ int, w http.ResponseWriter, r *http.Request) {
		start := 0
		if rng := r.Header.Get("Range"); rng != "" {
			if _, err := fmt.Sscanf(rng, "bytes=%d-", &start); err != nil {
				t.Errorf("unexpected Range %q", rng)
			}
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		if start >= cut {
			return
		}
		code, extra := "200 OK", ""
		if start > 0 {
			code = "206 Partial Content"
			extra = fmt.Sprintf("Content-Range: bytes %d-%d/%d\r\n", start, len(data)-1, len(data))
		}
		fmt.Fprintf(buf, "HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n", code, len(data)-start, extra)
		buf.Write(data[start:cut])
		buf.Flush()
	}
}

// stallAt sends the file up to cut, then goes silent until the client
// gives up.
func stallAt(data []byte, cut int) fileHandler {
	return func(t *testing.T, _ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:cut])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
}

// sequence uses the handlers in turn, repeating the last one.
func sequence(hs ...fileHandler) fileHandler {
	return func(t *testing.T, n int, w http.ResponseWriter, r *http.Request) {
		hs[min(n, len(hs)-1)](t, n, w, r)
	}
}

// modelServer is a models server with one model under a subfolder, so
// that relative URLs in the manifest get resolved.
type modelServer struct {
	*httptest.Server
	mu            sync.Mutex
	entry         ManifestEntry
	manifest      fileHandler // nil: serve the manifest of entry
	file          fileHandler
	fileRanges    []string // the Range header of each file request
	manifestCount int
}

func newModelServer(t *testing.T, entry ManifestEntry, file fileHandler) *modelServer {
	t.Helper()
	s := &modelServer{entry: entry, file: file}
	mux := http.NewServeMux()
	mux.HandleFunc("/m/manifest.json", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := s.manifestCount
		s.manifestCount++
		h := s.manifest
		s.mu.Unlock()
		if h != nil {
			h(t, n, w, r)
			return
		}
		json.NewEncoder(w).Encode(Manifest{Models: []ManifestEntry{s.entry}})
	})
	mux.HandleFunc("/m/blobs/model.bin", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := len(s.fileRanges)
		s.fileRanges = append(s.fileRanges, r.Header.Get("Range"))
		h := s.file
		s.mu.Unlock()
		h(t, n, w, r)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *modelServer) ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.fileRanges...)
}

func (s *modelServer) setFile(h fileHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.file = h
}

// sleeps counts the retries of a pull, whose delays the tests cut to a
// microsecond.
type sleeps struct {
	mu sync.Mutex
	n  int
}

func (s *sleeps) retried() {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
}

func (s *sleeps) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func entryFor(data []byte) ManifestEntry {
	return ManifestEntry{Name: testModel, File: "detr-resnet-50.onnx", URL: "blobs/model.bin", SHA256: sha(data), Size: int64(len(data))}
}

func options(srv *modelServer, dir string, sl *sleeps) PullOptions {
	return PullOptions{
		Client:      srv.Client(),
		ManifestURL: srv.URL + "/m/",
		Name:        testModel,
		Dir:         dir,
		retryDelay:  time.Microsecond,
		onRetry:     sl.retried,
	}
}

func assertInstalled(t *testing.T, path string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("installed model: %v", err)
	}
	if sha(got) != sha(data) {
		t.Fatalf("installed model has sha256 %s, want %s", sha(got), sha(data))
	}
	if _, err := os.Stat(path + ".part"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s.part left behind (stat: %v)", path, err)
	}
}

func TestPullSucceeds(t *testing.T) {
	const size = 3<<20 + 12345
	data := modelData(t, size)
	stale := modelData(t, size/2)
	stale[0] ^= 0xff // same length as half the file, different bytes
	half := size / 2

	tests := []struct {
		name       string
		noSize     bool   // manifest omits the size
		part       []byte // left by an earlier pull
		file       func(data []byte) fileHandler
		wantRanges []string
		wantSleeps int
	}{
		{
			name:       "fresh download",
			file:       serve,
			wantRanges: []string{""},
		},
		{
			name:       "resume a partial download",
			part:       data[:half],
			file:       serve,
			wantRanges: []string{fmt.Sprintf("bytes=%d-", half)},
		},
		{
			name:       "server ignores range",
			part:       data[:half],
			file:       ignoreRange,
			wantRanges: []string{fmt.Sprintf("bytes=%d-", half)},
		},
		{
			name:       "part larger than the file",
			part:       append(append([]byte(nil), data...), 1, 2, 3),
			file:       serve,
			wantRanges: []string{""},
		},
		{
			name:       "complete part, size known",
			part:       data,
			file:       serve,
			wantRanges: nil,
		},
		{
			name:       "complete part, size unknown: 416",
			noSize:     true,
			part:       data,
			file:       serve,
			wantRanges: []string{fmt.Sprintf("bytes=%d-", size)},
		},
		{
			name:       "stale part from another file version",
			part:       stale,
			file:       serve,
			wantRanges: []string{fmt.Sprintf("bytes=%d-", half), ""},
		},
		{
			name: "connection dropped once",
			file: func(d []byte) fileHandler {
				return sequence(dropAt(d, 1<<20), serve(d))
			},
			wantRanges: []string{"", fmt.Sprintf("bytes=%d-", 1<<20)},
			wantSleeps: 1,
		},
		{
			name: "503 twice",
			file: func(d []byte) fileHandler {
				return sequence(status(503), status(503), serve(d))
			},
			wantRanges: []string{"", "", ""},
			wantSleeps: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entry := entryFor(data)
			if tt.noSize {
				entry.Size = 0
			}
			srv := newModelServer(t, entry, tt.file(data))
			dir := t.TempDir()
			final := filepath.Join(dir, entry.File)
			if tt.part != nil {
				if err := os.WriteFile(final+".part", tt.part, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var sl sleeps
			var last [2]int64
			opts := options(srv, dir, &sl)
			opts.Progress = func(done, total int64) { last = [2]int64{done, total} }

			path, err := Pull(context.Background(), opts)
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if path != final {
				t.Errorf("Pull returned %s, want %s", path, final)
			}
			assertInstalled(t, path, data)
			if got := srv.ranges(); !slices.Equal(got, tt.wantRanges) {
				t.Errorf("file requests had Range headers %q, want %q", got, tt.wantRanges)
			}
			if got := sl.count(); got != tt.wantSleeps {
				t.Errorf("backed off %d times, want %d", got, tt.wantSleeps)
			}
			if last != [2]int64{size, size} {
				t.Errorf("last progress report was %d/%d, want %d/%d", last[0], last[1], size, size)
			}
		})
	}
}

func TestPullResumesAfterFailedPull(t *testing.T) {
	data := modelData(t, 4<<20)
	cut := 1<<20 + 7
	srv := newModelServer(t, entryFor(data), dropAt(data, cut))
	dir := t.TempDir()
	var sl sleeps
	opts := options(srv, dir, &sl)

	if _, err := Pull(context.Background(), opts); err == nil {
		t.Fatal("first Pull succeeded against a server that always drops the connection")
	}
	part := filepath.Join(dir, "detr-resnet-50.onnx.part")
	st, err := os.Stat(part)
	if err != nil {
		t.Fatalf("failed pull left no .part: %v", err)
	}
	if st.Size() != int64(cut) {
		t.Fatalf(".part holds %d bytes, want the %d received", st.Size(), cut)
	}
	if sl.count() != maxAttempts-1 {
		t.Errorf("backed off %d times, want %d", sl.count(), maxAttempts-1)
	}

	srv.setFile(serve(data))
	before := len(srv.ranges())
	path, err := Pull(context.Background(), opts)
	if err != nil {
		t.Fatalf("second Pull: %v", err)
	}
	assertInstalled(t, path, data)
	want := []string{fmt.Sprintf("bytes=%d-", cut)}
	if got := srv.ranges()[before:]; !slices.Equal(got, want) {
		t.Errorf("second pull sent Range headers %q, want %q", got, want)
	}
}

func TestPullFails(t *testing.T) {
	data := modelData(t, 1<<20)
	wrong := append([]byte(nil), data...)
	wrong[len(wrong)/2] ^= 1

	tests := []struct {
		name         string
		entry        func(ManifestEntry) ManifestEntry
		manifest     fileHandler
		file         fileHandler
		pullName     string
		wantErr      string
		wantRequests int // requests for the model file
		wantSleeps   int
	}{
		{
			name:         "file does not match the manifest",
			file:         serve(wrong),
			wantErr:      "the server's file does not match the manifest",
			wantRequests: 1,
		},
		{
			name:         "size does not match the manifest",
			file:         serve(data[:len(data)-1]),
			wantErr:      "the server's file does not match the manifest",
			wantRequests: 1,
		},
		{
			name:         "404 is not retried",
			file:         status(404),
			wantErr:      "404 Not Found: the manifest lists a file the server does not have",
			wantRequests: 1,
		},
		{
			name:         "5xx retried, then given up",
			file:         status(502),
			wantErr:      "502 Bad Gateway",
			wantRequests: maxAttempts,
			wantSleeps:   maxAttempts - 1,
		},
		{
			name:     "manifest missing",
			manifest: status(404),
			wantErr:  "404 Not Found: check --models-url or ANONYMIZE_MODELS_URL",
		},
		{
			name: "manifest malformed",
			manifest: func(t *testing.T, _ int, w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, `{"models": [{"name": "detr-resnet-50", "sha256": "abc"}]}`)
			},
			wantErr: "is malformed",
		},
		{
			name:     "model not on the server",
			pullName: "transpose-h-a4",
			wantErr:  `model "transpose-h-a4" is not on the models server`,
		},
		{
			name:  "url not http",
			entry: func(e ManifestEntry) ManifestEntry { e.URL = "file:///etc/passwd"; return e },
			// The scheme is checked before anything is downloaded.
			wantErr: "not http(s)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entry := entryFor(data)
			if tt.entry != nil {
				entry = tt.entry(entry)
			}
			file := tt.file
			if file == nil {
				file = serve(data)
			}
			srv := newModelServer(t, entry, file)
			srv.manifest = tt.manifest
			dir := t.TempDir()
			var sl sleeps
			opts := options(srv, dir, &sl)
			if tt.pullName != "" {
				opts.Name = tt.pullName
			}

			_, err := Pull(context.Background(), opts)
			if err == nil {
				t.Fatal("Pull succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if got := len(srv.ranges()); got != tt.wantRequests {
				t.Errorf("%d requests for the model file, want %d", got, tt.wantRequests)
			}
			if got := sl.count(); got != tt.wantSleeps {
				t.Errorf("backed off %d times, want %d", got, tt.wantSleeps)
			}
			for _, name := range []string{"detr-resnet-50.onnx", "detr-resnet-50.onnx.part"} {
				if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s exists after a failed pull (stat: %v)", name, err)
				}
			}
		})
	}
}

func TestPullConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    PullOptions
		wantErr string
	}{
		{"no server, no public source", PullOptions{Name: "transpose-h-a4", Dir: "x"}, "transpose-h-a4 has no public download"},
		{"sha256 not hex", PullOptions{ManifestURL: "http://host/", Name: testModel, Dir: "x", SHA256: "abc"}, `--sha256 "abc" is not 64 hex digits`},
		{"revision with a server", PullOptions{ManifestURL: "http://host/", Name: testModel, Dir: "x", Hub: HubOptions{Revision: strings.Repeat("a", 40)}},
			"--revision names a Hugging Face Hub commit, but a models server is configured"},
		{"not http", PullOptions{ManifestURL: "ftp://host/models", Name: testModel, Dir: "x"}, "not an http:// or https:// URL"},
		{"no name", PullOptions{ManifestURL: "http://host/", Dir: "x"}, "no model named: pass one of detr-resnet-50, transpose-h-a4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Pull(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Pull error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestPullRefusesAModelThatDoesNotFit: a download whose sha256 matches the
// manifest but whose tensors do not fit the model's contract is not
// installed, and nothing of it is left to be resumed.
func TestPullRefusesAModelThatDoesNotFit(t *testing.T) {
	pose := onnxgraph.New("pose")
	in := pose.Input("input", onnxgraph.Float32, onnxgraph.Param("batch"), onnxgraph.Fixed(3), onnxgraph.Fixed(256), onnxgraph.Fixed(192))
	pose.Node("Identity", []string{in}, []string{"heatmaps"})
	pose.Output("heatmaps", onnxgraph.Float32, onnxgraph.Param("batch"), onnxgraph.Fixed(17), onnxgraph.Fixed(64), onnxgraph.Fixed(48))
	poseData, err := pose.Marshal(17)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"a pose model listed as the detector", poseData, `no tensor "pixel_values"`},
		{"not an ONNX file", []byte("<html>moved</html>"), "not an ONNX model"},
		{"a detector traced with a fixed batch of 1", detectorModel(t, onnxgraph.Fixed(1)), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newModelServer(t, entryFor(tt.data), serve(tt.data))
			dir := t.TempDir()
			var sl sleeps
			path, err := Pull(context.Background(), options(srv, dir, &sl))
			if tt.wantErr == "" {
				// A fixed batch is the export's choice: it fits, and the
				// run says which --batch to pass.
				if err != nil {
					t.Fatalf("Pull: %v", err)
				}
				assertInstalled(t, path, tt.data)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "not installed") {
				t.Fatalf("Pull error = %v, want one containing %q and 'not installed'", err, tt.wantErr)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".onnx") || strings.HasSuffix(e.Name(), ".part") {
					t.Errorf("%s left in the model folder", e.Name())
				}
			}
		})
	}
}

func TestPullAlreadyInstalled(t *testing.T) {
	data := modelData(t, 1<<20)
	tests := []struct {
		name         string
		installed    []byte
		wantRequests int
	}{
		{"same file", data, 0},
		{"other file", data[:1000], 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newModelServer(t, entryFor(data), serve(data))
			dir := t.TempDir()
			final := filepath.Join(dir, "detr-resnet-50.onnx")
			if err := os.WriteFile(final, tt.installed, 0o644); err != nil {
				t.Fatal(err)
			}
			var sl sleeps
			path, err := Pull(context.Background(), options(srv, dir, &sl))
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			assertInstalled(t, path, data)
			if got := len(srv.ranges()); got != tt.wantRequests {
				t.Errorf("%d requests for the model file, want %d", got, tt.wantRequests)
			}
		})
	}
}

func TestPullProgress(t *testing.T) {
	data := modelData(t, 2<<20+1)
	srv := newModelServer(t, entryFor(data), serve(data))
	var sl sleeps
	opts := options(srv, t.TempDir(), &sl)
	var reports [][2]int64
	opts.Progress = func(done, total int64) { reports = append(reports, [2]int64{done, total}) }
	if _, err := Pull(context.Background(), opts); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if len(reports) < 2 {
		t.Fatalf("got %d progress reports, want several", len(reports))
	}
	n := int64(len(data))
	for i, r := range reports {
		if r[1] != n {
			t.Fatalf("report %d has total %d, want %d", i, r[1], n)
		}
		if i > 0 && r[0] < reports[i-1][0] {
			t.Fatalf("progress went backwards: %v then %v", reports[i-1], r)
		}
	}
	if last := reports[len(reports)-1]; last[0] != n {
		t.Errorf("last report %d/%d, want %d/%d", last[0], last[1], n, n)
	}
}

func TestPullCancelKeepsPart(t *testing.T) {
	data := modelData(t, 2<<20)
	cut := 1 << 20
	srv := newModelServer(t, entryFor(data), stallAt(data, cut))
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sl sleeps
	opts := options(srv, dir, &sl)
	opts.Progress = func(done, total int64) {
		if done >= int64(cut) {
			cancel()
		}
	}
	_, err := Pull(ctx, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Pull error = %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "run the same command again to resume") {
		t.Errorf("error %q does not say how to resume", err)
	}
	st, err := os.Stat(filepath.Join(dir, "detr-resnet-50.onnx.part"))
	if err != nil {
		t.Fatalf("cancelled pull left no .part: %v", err)
	}
	if st.Size() != int64(cut) {
		t.Errorf(".part holds %d bytes, want %d", st.Size(), cut)
	}
	if sl.count() != 0 {
		t.Errorf("backed off %d times after cancellation", sl.count())
	}
}

func TestPullStalledConnection(t *testing.T) {
	data := modelData(t, 2<<20)
	cut := 1 << 20
	srv := newModelServer(t, entryFor(data), sequence(stallAt(data, cut), serve(data)))
	var sl sleeps
	opts := options(srv, t.TempDir(), &sl)
	opts.stallTimeout = 100 * time.Millisecond
	path, err := Pull(context.Background(), opts)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	assertInstalled(t, path, data)
	want := []string{"", fmt.Sprintf("bytes=%d-", cut)}
	if got := srv.ranges(); !slices.Equal(got, want) {
		t.Errorf("Range headers %q, want %q", got, want)
	}
}

func TestPullWritesManifestCache(t *testing.T) {
	data := modelData(t, 64<<10)
	srv := newModelServer(t, entryFor(data), serve(data))
	dir := filepath.Join(t.TempDir(), "new", "models")
	var sl sleeps
	if _, err := Pull(context.Background(), options(srv, dir, &sl)); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	list, err := List(dir)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if list[0].Name != testModel || !list[0].Present || list[0].Manifest != ManifestMatches {
		t.Errorf("List()[0] = %+v, want %s present and matching the manifest", list[0], testModel)
	}
}

func TestResolveManifestURL(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvModelsURL {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		flag, env string
		want      string
		wantErr   string
	}{
		{flag: "https://models.example/anonymize", want: "https://models.example/anonymize/manifest.json"},
		{flag: "https://models.example/anonymize/", want: "https://models.example/anonymize/manifest.json"},
		{flag: "http://models.example:8080", want: "http://models.example:8080/manifest.json"},
		{flag: "https://models.example/v2/index.json", want: "https://models.example/v2/index.json"},
		{flag: "https://a.example/", env: "https://b.example/", want: "https://a.example/manifest.json"},
		{env: "https://b.example/m", want: "https://b.example/m/manifest.json"},
		{want: ""}, // no server: the models' public source
		{flag: "models.example/anonymize", wantErr: "not an http:// or https:// URL"},
		{flag: "file:///srv/models", wantErr: "not an http:// or https:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.flag+"|"+tt.env, func(t *testing.T) {
			got, err := ResolveManifestURL(tt.flag, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseManifest(t *testing.T) {
	h := strings.Repeat("ab", 32)
	tests := []struct {
		name, json string
		wantErr    string
	}{
		{"minimal", `{"models":[{"name":"x","sha256":"` + h + `"}]}`, ""},
		{"empty list", `{"models":[]}`, ""},
		{"unknown fields", `{"version":2,"models":[{"name":"x","sha256":"` + h + `","licence":"MIT"}]}`, ""},
		{"upper-case hex", `{"models":[{"name":"x","sha256":"` + strings.ToUpper(h) + `"}]}`, ""},
		{"not json", `models: []`, "not valid JSON"},
		{"no models", `{}`, `no "models" list`},
		{"no name", `{"models":[{"sha256":"` + h + `"}]}`, "has no name"},
		{"twice", `{"models":[{"name":"x","sha256":"` + h + `"},{"name":"x","sha256":"` + h + `"}]}`, "listed twice"},
		{"short sha", `{"models":[{"name":"x","sha256":"abcd"}]}`, "not 64 hex digits"},
		{"negative size", `{"models":[{"name":"x","sha256":"` + h + `","size":-1}]}`, "negative size"},
		{"path in file", `{"models":[{"name":"x","file":"../x.onnx","sha256":"` + h + `"}]}`, "plain file name"},
		{"hidden file", `{"models":[{"name":"x","file":".bashrc","sha256":"` + h + `"}]}`, "plain file name"},
		{"path in name", `{"models":[{"name":"a/b","sha256":"` + h + `"}]}`, "give a file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tt.json))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseManifest: %v", err)
				}
				for _, e := range m.Models {
					if e.SHA256 != h {
						t.Errorf("sha256 %q not normalised to %q", e.SHA256, h)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// The example in testdata is what models/README.md points hosts at; it
// must stay a manifest Pull accepts, listing every registry model under
// its registry file name.
func TestManifestExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		t.Fatalf("testdata/manifest.json: %v", err)
	}
	for _, r := range Registry {
		e, ok := m.Find(r.Name)
		if !ok {
			t.Errorf("example manifest lacks %s", r.Name)
			continue
		}
		if e.File != r.File {
			t.Errorf("example lists %s as %s, registry says %s", r.Name, e.File, r.File)
		}
		if e.Size <= 0 {
			t.Errorf("example entry %s has no size", r.Name)
		}
	}

	schema, err := os.ReadFile(filepath.Join("testdata", "manifest.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties struct {
			Models struct {
				Items struct {
					Required   []string                   `json:"required"`
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"items"`
			} `json:"models"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatalf("testdata/manifest.schema.json: %v", err)
	}
	// The schema must describe exactly the fields ManifestEntry reads.
	want := []string{"file", "name", "sha256", "size", "url"}
	var got []string
	for k := range s.Properties.Models.Items.Properties {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("schema describes fields %v, ManifestEntry has %v", got, want)
	}
	if !slices.Equal(s.Properties.Models.Items.Required, []string{"name", "sha256"}) {
		t.Errorf("schema requires %v, ParseManifest requires [name sha256]", s.Properties.Models.Items.Required)
	}
}

// A slow download that keeps delivering must not be mistaken for a stall,
// however long it takes in all.
func TestPullSlowButSteady(t *testing.T) {
	data := modelData(t, 64<<10)
	const chunks = 60
	slow := func(t *testing.T, _ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		step := len(data) / chunks
		for i := 0; i < len(data); i += step {
			w.Write(data[i:min(i+step, len(data))])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(25 * time.Millisecond):
			}
		}
	}
	srv := newModelServer(t, entryFor(data), slow)
	var sl sleeps
	opts := options(srv, t.TempDir(), &sl)
	// Far longer than any pause between chunks, far shorter than the whole.
	opts.stallTimeout = time.Second
	path, err := Pull(context.Background(), opts)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	assertInstalled(t, path, data)
	if got := srv.ranges(); len(got) != 1 {
		t.Errorf("%d requests for the file (Range headers %q), want 1", len(got), got)
	}
}
