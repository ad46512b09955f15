package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

const (
	semrpcModule = "github.com/semrpc/semrpc"
	semrpcLabrpc = semrpcModule + "/labrpc"
	semrpcLabgob = semrpcModule + "/labrpc/labgob"
)

// listedPackage is what labtest reads of go list -json.
type listedPackage struct {
	ImportPath   string
	Dir          string
	Name         string
	GoFiles      []string
	CgoFiles     []string
	TestGoFiles  []string
	XTestGoFiles []string
	ForTest      string
	DepOnly      bool
	Module       *struct {
		Path string
		Main bool
	}
	Error *struct{ Err string }
}

// prepared is what go test needs: an overlay file and, if the lab's module
// does not require semrpc, a modfile.
type prepared struct {
	overlay string
	modfile string
	pkgs    []string // the import paths of the packages to test
	dirs    []string // and their directories
}

func prepare(opts options, pkgs []string, work string) (prepared, error) {
	var p prepared
	gomod, err := goOutput("env", "GOMOD")
	if err != nil {
		return p, err
	}
	gomod = strings.TrimSpace(gomod)
	if gomod == "" || gomod == os.DevNull {
		return p, errors.New("not inside a Go module: run labtest from the lab's src/ directory (the one with go.mod)")
	}
	modSrc, err := os.ReadFile(gomod)
	if err != nil {
		return p, err
	}
	modPath := modulePath(modSrc)
	listed, err := goList(pkgs)
	if err != nil {
		return p, err
	}
	for _, lp := range listed {
		if !lp.DepOnly && lp.ForTest == "" && !strings.HasSuffix(lp.ImportPath, ".test") {
			p.pkgs = append(p.pkgs, lp.ImportPath)
			p.dirs = append(p.dirs, lp.Dir)
		}
	}
	swap := map[string]string{}
	skipDirs := map[string]bool{}
	if opts.labrpc == "semrpc" && modPath != semrpcModule {
		for _, lp := range listed {
			if lp.Module == nil || !lp.Module.Main || lp.ForTest != "" {
				continue
			}
			switch base := filepath.Base(lp.ImportPath); {
			case base == "labrpc" || lp.ImportPath == "labrpc":
				swap[lp.ImportPath] = semrpcLabrpc
				skipDirs[lp.Dir] = true
			case base == "labgob" || lp.ImportPath == "labgob":
				swap[lp.ImportPath] = semrpcLabgob
				skipDirs[lp.Dir] = true
			}
		}
	}
	replace := map[string]string{}
	seen := map[string]bool{}
	fset := token.NewFileSet()
	for _, lp := range listed {
		if lp.Error != nil {
			continue // go test reports it
		}
		if lp.Module == nil || !lp.Module.Main || skipDirs[lp.Dir] || lp.ForTest != "" || strings.HasSuffix(lp.ImportPath, ".test") {
			continue
		}
		files := append(append([]string(nil), lp.GoFiles...), lp.CgoFiles...)
		root := !lp.DepOnly
		var tests, xtests []testFunc
		for _, set := range []struct {
			names []string
			into  *[]testFunc
		}{{files, nil}, {lp.TestGoFiles, &tests}, {lp.XTestGoFiles, &xtests}} {
			if set.into != nil && !root {
				continue
			}
			for _, name := range set.names {
				path := filepath.Join(lp.Dir, name)
				if seen[path] {
					continue
				}
				seen[path] = true
				src, err := os.ReadFile(path)
				if err != nil {
					return p, err
				}
				f, err := parseFile(fset, path, src)
				if err != nil {
					continue // go test reports it
				}
				edits := swapImports(fset, f, swap)
				if set.into != nil && !opts.real {
					e, t := wrapTests(fset, f)
					edits = append(edits, e...)
					*set.into = append(*set.into, t...)
				}
				if len(edits) == 0 {
					continue
				}
				edits = lineDirectives(fset, f, edits)
				out := filepath.Join(work, fmt.Sprintf("%d-%s", len(replace), name))
				if err := os.WriteFile(out, applyEdits(src, edits), 0o644); err != nil {
					return p, err
				}
				replace[path] = out
			}
		}
		for _, w := range []struct {
			tests []testFunc
			pkg   string
			file  string
		}{{tests, lp.Name, "labtest_wrap_test.go"}, {xtests, lp.Name + "_test", "labtest_xwrap_test.go"}} {
			if len(w.tests) == 0 {
				continue
			}
			path := filepath.Join(lp.Dir, w.file)
			if _, err := os.Stat(path); err == nil {
				return p, fmt.Errorf("%s exists: labtest needs that name for its generated file", path)
			}
			out := filepath.Join(work, fmt.Sprintf("%d-%s", len(replace), w.file))
			if err := os.WriteFile(out, wrapperFile(w.pkg, w.tests), 0o644); err != nil {
				return p, err
			}
			replace[path] = out
		}
	}
	overlay, err := json.Marshal(struct{ Replace map[string]string }{replace})
	if err != nil {
		return p, err
	}
	p.overlay = filepath.Join(work, "overlay.json")
	if err := os.WriteFile(p.overlay, overlay, 0o644); err != nil {
		return p, err
	}
	if modPath != semrpcModule {
		dir, err := semrpcDir(opts.semrpc)
		if err != nil {
			return p, err
		}
		p.modfile, err = writeModfile(gomod, modSrc, dir, work)
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// modulePath reads the module line of a go.mod file.
func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// semrpcDir finds semrpc's source: -semrpc, $LABTEST_SEMRPC, or the module
// this binary was built from.
func semrpcDir(flagDir string) (string, error) {
	candidates := []string{flagDir, os.Getenv("LABTEST_SEMRPC")}
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "..", ".."))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(c, "go.mod"))
		if err == nil && modulePath(data) == semrpcModule {
			return filepath.Abs(c)
		}
		if flagDir != "" && c == flagDir {
			return "", fmt.Errorf("-semrpc=%s: no go.mod of %s there", c, semrpcModule)
		}
	}
	return "", fmt.Errorf("cannot find semrpc's source (this binary was built without it): pass -semrpc=DIR or set LABTEST_SEMRPC")
}

func goList(pkgs []string) ([]listedPackage, error) {
	args := append([]string{"list", "-e", "-json", "-deps", "-test"}, pkgs...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v\n%s", err, stderr.Bytes())
	}
	var listed []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var lp listedPackage
		if err := dec.Decode(&lp); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list: %v", err)
		}
		listed = append(listed, lp)
	}
	return listed, nil
}

func goOutput(args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out), nil
}
