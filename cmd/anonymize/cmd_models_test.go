package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
		{"no server configured", nil, []string{"models", "pull", "detr-resnet-50"}, "ANONYMIZE_MODELS_URL"},
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
