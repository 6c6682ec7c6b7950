package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// TestImagePackaging replays the runtime image's packaging on a bare
// Debian 12 root, as no Docker engine runs here: the packages
// scripts/runtime-packages.sh lists for the binary (what the Dockerfile's
// build stage hands the runtime stage) are installed into a fresh
// `debootstrap --variant=minbase` root; then, inside it (chroot), ldd finds
// every library, `anonymize version` runs and `anonymize doctor` passes
// its checks on the CPU. The image builds on Ubuntu, whose package names
// differ; the logic is the same.
func TestImagePackaging(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Debian root (about 1.2 GB, minutes)")
	}
	if os.Geteuid() != 0 {
		testutil.Missing(t, "root", "debootstrap and chroot need root: run the tests as root")
	}
	debootstrap := testutil.Tool(t, "debootstrap")
	mirror := aptMirror(t)
	root := t.TempDir()

	// The binary as `make build` lays it out: lib/ beside it holds ONNX
	// Runtime, found there without any variable.
	bin := anonymizeBinary(t)
	lib := testutil.ORTLib(t)
	pkgs := runtimePackages(t, bin, lib)
	for _, want := range []string{"libopencv-core406", "libopencv-imgproc406", "libopencv-videoio406"} {
		if !strings.Contains(" "+strings.Join(pkgs, " ")+" ", " "+want+" ") {
			t.Fatalf("runtime-packages.sh lists no %s (the binary links OpenCV): %v", want, pkgs)
		}
	}

	start := time.Now()
	run(t, debootstrap, "--variant=minbase", "bookworm", root, mirror)
	t.Logf("debootstrap: %v", time.Since(start).Round(time.Second))
	proc := filepath.Join(root, "proc")
	run(t, "mount", "--bind", "/proc", proc)
	t.Cleanup(func() { exec.Command("umount", "-l", proc).Run() })

	start = time.Now()
	inRoot(t, root, "apt-get", "update", "-qq")
	// ffmpeg as the runtime stage installs it, beside the listed packages.
	inRoot(t, root, append([]string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
		"--no-install-recommends", "ffmpeg"}, pkgs...)...)
	t.Logf("%d packages installed in %v", len(pkgs), time.Since(start).Round(time.Second))

	dir := filepath.Join(root, "opt", "anonymize")
	copyFile(t, bin, filepath.Join(dir, "anonymize"), 0o755)
	copyFile(t, lib, filepath.Join(dir, "lib", "libonnxruntime.so.1"), 0o644)
	models := filepath.Join(root, "models")
	det, pose, err := synthetic.WriteModels(models)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, testutil.AuditModel(t), filepath.Join(models, "blazeface-back-256.onnx"), 0o644)

	ldd := inRoot(t, root, "ldd", "/opt/anonymize/anonymize")
	if strings.Contains(ldd, "not found") {
		t.Fatalf("in the Debian root the binary lacks libraries:\n%s", ldd)
	}
	if out := inRoot(t, root, "/opt/anonymize/anonymize", "version"); !strings.Contains(out, "anonymize") {
		t.Errorf("anonymize version printed %q", out)
	}
	out := inRoot(t, root, "/opt/anonymize/anonymize", "doctor", "--device", "cpu", "--models-dir", "/models",
		"--detector-model", "/models/"+filepath.Base(det), "--pose-model", "/models/"+filepath.Base(pose))
	t.Logf("doctor in the Debian root:\n%s", out)
}

// runtimePackages runs the image's packaging script on files.
func runtimePackages(t *testing.T, files ...string) []string {
	t.Helper()
	script := filepath.Join(testutil.RepoRoot(t), "scripts", "runtime-packages.sh")
	return strings.Fields(run(t, script, files...))
}

// aptMirror is the Debian mirror this machine's apt uses, for debootstrap.
func aptMirror(t *testing.T) string {
	t.Helper()
	for _, f := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		defer file.Close()
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			switch {
			case len(fields) >= 2 && fields[0] == "URIs:":
				return fields[1]
			case len(fields) >= 3 && fields[0] == "deb" && strings.HasPrefix(fields[1], "http"):
				return fields[1]
			}
		}
	}
	testutil.Missing(t, "a Debian mirror", "no URIs in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list")
	return ""
}

// inRoot runs a command inside root (chroot) with a clean environment:
// nothing of this machine's (ANONYMIZE_ORT_LIB, say) may help it.
func inRoot(t *testing.T, root string, args ...string) string {
	t.Helper()
	return run(t, "chroot", append([]string{root, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}, args...)...)
}

// run runs a command and returns its standard output, failing the test
// with both outputs when it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}
