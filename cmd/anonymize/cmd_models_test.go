package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// modelsServer serves the synthetic models under the registry's names with
// a manifest, as an organisation's models server would.
func modelsServer(t *testing.T, detector, pose string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	files := map[string]string{"detr-resnet-50.onnx": detector, "transpose-h-a4-256x192.onnx": pose}
	type entry struct {
		Name   string `json:"name"`
		File   string `json:"file"`
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	}
	var manifest struct {
		Models []entry `json:"models"`
	}
	for name, file := range map[string]string{"detr-resnet-50": "detr-resnet-50.onnx", "transpose-h-a4": "transpose-h-a4-256x192.onnx"} {
		data, err := os.ReadFile(files[file])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		manifest.Models = append(manifest.Models, entry{Name: name, File: file, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))})
	}
	body, _ := json.Marshal(manifest)
	var downloads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/models/")
		if name == "manifest.json" {
			w.Write(body)
			return
		}
		path, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		downloads.Add(1)
		http.ServeFile(w, r, path)
	}))
	t.Cleanup(srv.Close)
	return srv, &downloads
}

// TestModelsPullListAndUse pulls both models from a local server, lists
// them, and runs a video with nothing but the model folder configured.
func TestModelsPullListAndUse(t *testing.T) {
	detector, pose, clip, _ := e2eFixtures(t)
	srv, downloads := modelsServer(t, detector, pose)
	dir := filepath.Join(t.TempDir(), "models")
	env := map[string]string{"ANONYMIZE_MODELS": dir, "ANONYMIZE_MODELS_URL": srv.URL + "/models/"}

	for _, name := range []string{"detr-resnet-50", "transpose-h-a4"} {
		f, out, errOut := testFactory(t, env)
		if code := Execute(context.Background(), f, "models", "pull", name); code != 0 {
			t.Fatalf("pull %s: exit %d\n%s", name, code, errOut)
		}
		if !strings.Contains(out.String(), "installed "+name) {
			t.Errorf("pull output %q", out)
		}
	}
	// Pulling again finds the files in place and downloads nothing.
	f, _, errOut := testFactory(t, env)
	if code := Execute(context.Background(), f, "models", "pull", "detr-resnet-50"); code != 0 {
		t.Fatalf("second pull: exit %d\n%s", code, errOut)
	}
	if n := downloads.Load(); n != 2 {
		t.Errorf("%d downloads, want 2 (the second pull must reuse the installed file)", n)
	}

	f, out, _ := testFactory(t, env)
	if code := Execute(context.Background(), f, "models", "list"); code != 0 {
		t.Fatal("models list failed")
	}
	for _, want := range []string{"model folder: " + dir + " (from ANONYMIZE_MODELS)", "detr-resnet-50", "transpose-h-a4", "installed (matches manifest)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("models list output lacks %q:\n%s", want, out)
		}
	}
	data, _ := os.ReadFile(detector)
	sum := sha256.Sum256(data)
	if !strings.Contains(out.String(), hex.EncodeToString(sum[:])) {
		t.Errorf("models list does not show the detector's sha256:\n%s", out)
	}

	// The pulled models are found without any model flag.
	outVideo := filepath.Join(t.TempDir(), "out.mp4")
	r := run(t, []string{"ANONYMIZE_MODELS=" + dir}, "video", "-q", "--device", "cpu", "--frames", "3", clip, outVideo)
	if r.code != 0 {
		t.Fatalf("video with pulled models: exit %d\n%s", r.code, r.stderr)
	}
}

func TestModelsPullErrors(t *testing.T) {
	detector, pose, _, _ := e2eFixtures(t)
	srv, _ := modelsServer(t, detector, pose)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no server, no public source", nil, []string{"models", "pull", "transpose-h-a4"},
			"transpose-h-a4 has no public download (yangsenius/TransPose at commit 5ba5bf3ae01d, weights of its Hub release tp_h_48_256x192_enc4_d96_h192_mh1.pth); pull it from your organisation's models server (--models-url or ANONYMIZE_MODELS_URL, see models/README.md) or export it with models/export/export_transpose.py"},
		{"Hub unreachable", map[string]string{"HF_ENDPOINT": closedURL(t)}, []string{"models", "pull", "detr-resnet-50", "--revision", strings.Repeat("ab", 20)},
			"/Xenova/detr-resnet-50/resolve/" + strings.Repeat("ab", 20) + "/onnx/model.onnx elsewhere"},
		{"unknown model", map[string]string{"ANONYMIZE_MODELS_URL": srv.URL + "/models/"}, []string{"models", "pull", "yolo"}, "yolo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"ANONYMIZE_MODELS": t.TempDir()}
			for k, v := range tt.env {
				env[k] = v
			}
			f, _, errOut := testFactory(t, env)
			if code := Execute(context.Background(), f, tt.args...); code != exitError {
				t.Errorf("exit %d, want %d", code, exitError)
			}
			if !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("stderr %q does not mention %q", errOut, tt.want)
			}
		})
	}
}

// closedURL is the URL of a server that has stopped: connections to it are
// refused.
func closedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

// fakeHub serves file as the Hugging Face Hub serves Xenova/detr-resnet-50's
// onnx/model.onnx at commit: resolve URLs redirect to a storage path, with
// the commit, sha256 and size in headers.
func fakeHub(t *testing.T, file, commit string) *httptest.Server {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	mux := http.NewServeMux()
	mux.HandleFunc("/Xenova/detr-resnet-50/resolve/{rev}/onnx/model.onnx", func(w http.ResponseWriter, r *http.Request) {
		if rev := r.PathValue("rev"); rev != "main" && rev != commit {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Repo-Commit", commit)
		w.Header().Set("X-Linked-Etag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
		http.Redirect(w, r, "/storage/"+hex.EncodeToString(sum[:]), http.StatusFound)
	})
	mux.HandleFunc("/storage/", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestModelsPullFromHub: with no models server configured, the detector
// comes from the Hub (HF_ENDPOINT points at a stand-in), `models list`
// shows the commit it was pinned at, and a video runs with it.
func TestModelsPullFromHub(t *testing.T) {
	detector, pose, clip, _ := e2eFixtures(t)
	const commit = "0123456789abcdef0123456789abcdef01234567"
	hub := fakeHub(t, detector, commit)
	dir := filepath.Join(t.TempDir(), "models")
	env := map[string]string{"ANONYMIZE_MODELS": dir, "HF_ENDPOINT": hub.URL}

	f, out, errOut := testFactory(t, env)
	if code := Execute(context.Background(), f, "models", "pull", "detr-resnet-50"); code != 0 {
		t.Fatalf("pull: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out.String(), "installed detr-resnet-50 at "+filepath.Join(dir, "detr-resnet-50.onnx")) {
		t.Errorf("pull output %q", out)
	}
	if !strings.Contains(errOut.String(), "pins no commit") || !strings.Contains(errOut.String(), commit) {
		t.Errorf("pull did not warn that it pinned %s itself:\n%s", commit, errOut)
	}

	f, out, _ = testFactory(t, env)
	if code := Execute(context.Background(), f, "models", "list"); code != 0 {
		t.Fatal("models list failed")
	}
	if !strings.Contains(out.String(), "installed (Hub Xenova/detr-resnet-50@0123456)") {
		t.Errorf("models list does not show the Hub commit:\n%s", out)
	}

	outVideo := filepath.Join(t.TempDir(), "out.mp4")
	r := run(t, []string{"ANONYMIZE_MODELS=" + dir}, "video", "-q", "--device", "cpu", "--frames", "3", "--pose-model", pose, clip, outVideo)
	if r.code != 0 {
		t.Fatalf("video with the detector from the Hub: exit %d\n%s", r.code, r.stderr)
	}
}
