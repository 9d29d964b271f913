// Built on amd64 only: the generator runs on the host, and the arm64 run of
// these tests under qemu cannot start host programs.
//go:build amd64

package stamp

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedKernelsAreCurrent: the committed kernels are what
// gen_kernels.go writes, so an edit of either alone fails here.
func TestGeneratedKernelsAreCurrent(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	dir := t.TempDir()
	src, err := os.ReadFile("gen_kernels.go")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gen_kernels.go"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goCmd, "run", "gen_kernels.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=", "GOARCH=", "GOFLAGS=-mod=mod", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_kernels.go: %v\n%s", err, out)
	}
	for _, name := range []string{"kernel_generic.go", "kernel_amd64.s", "kernel_arm64.s", "kernel_simd.go", "kernel_simd_amd64.s"} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what gen_kernels.go writes: run go generate ./internal/stamp", name)
		}
	}
}
