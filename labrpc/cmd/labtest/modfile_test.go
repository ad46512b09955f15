package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestWithGoVersionAndsTheFilesConstraintWithTheRelease(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"no constraint", "// Package p.\npackage p\n", "//go:build go1.25\n\n// Package p.\npackage p\n"},
		{"a go:build line", "//go:build linux && !race\n\npackage p\n", "//go:build go1.25 && linux && !race\n\npackage p\n"},
		{"an or keeps its parentheses", "// Copyright.\n\n//go:build linux || darwin\n\npackage p\n", "// Copyright.\n\n//go:build go1.25 && (linux || darwin)\n\npackage p\n"},
		{"only +build lines", "// +build linux\n\npackage p\n", "//go:build go1.25 && linux\n\n// +build linux\n\npackage p\n"},
		{"a go:build line in the code stays", "package p\n\n//go:build linux\nvar x int\n", "//go:build go1.25\n\npackage p\n\n//go:build linux\nvar x int\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(withGoVersion([]byte(tt.src), "go1.25")); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestGoModReadersFindTheGoLineAndRequirements(t *testing.T) {
	mod := []byte(`module 6.5840 // the lab

go 1.22

require github.com/anishathalye/porcupine v1.0.3

require (
	golang.org/x/sys v0.10.0 // indirect
	"example.com/q" v1.2.3
)
`)
	if got := goDirective(mod); got != "1.22" {
		t.Errorf("goDirective = %q, want 1.22", got)
	}
	want := map[string]string{"github.com/anishathalye/porcupine": "v1.0.3", "golang.org/x/sys": "v0.10.0", "example.com/q": "v1.2.3"}
	if got := requiredModules(mod); !reflect.DeepEqual(got, want) {
		t.Errorf("requiredModules = %v, want %v", got, want)
	}
	if got := goDirective([]byte("module m\n")); got != "" {
		t.Errorf("goDirective without a go line = %q", got)
	}
}

func TestNeededModulesAreSemrpcAndWhatItsLabrpcImports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	dir, err := semrpcDir("")
	if err != nil {
		t.Fatal(err)
	}
	mods, err := neededModules(dir)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, m := range mods {
		paths = append(paths, m.path)
		if m.path == semrpcModule && len(m.pkgDirs) < 3 {
			t.Errorf("semrpc's packages to copy: %v, want labrpc, labgob, labtest and theirs", m.pkgDirs)
		}
	}
	joined := strings.Join(paths, " ")
	if !strings.Contains(joined, semrpcModule) {
		t.Errorf("modules %v lack semrpc", paths)
	}
	if strings.Contains(joined, "porcupine") {
		t.Errorf("modules %v include porcupine, which labrpc does not import (and the 2025 labs pin an older one)", paths)
	}
}

func TestPruneCacheRemovesCopiesUnusedForAMonth(t *testing.T) {
	cache := t.TempDir()
	old, fresh := filepath.Join(cache, "old"), filepath.Join(cache, "fresh")
	for _, d := range []string{old, fresh} {
		if err := os.MkdirAll(filepath.Join(d, "m"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-cacheUnusedFor - time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	pruneCache(cache)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("a copy unused for %v is still there (%v)", cacheUnusedFor, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh copy was removed: %v", err)
	}
}
