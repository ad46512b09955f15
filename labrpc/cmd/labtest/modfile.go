package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"go/version"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The lab's module must build with semrpc's labrpc, labgob and labtest as
// dependencies, without any change to what the lab's own go test sees: its
// go directive (which sets the language version of its files and which
// checks vet applies to them: from go 1.24 on, printf flags a non-constant
// format string, as in the 2025 course files) and the versions of its
// dependencies (porcupine v1.0.3 in the 2025 labs).
//
// Requiring semrpc as it is would do neither: semrpc's go.mod says go 1.25
// and requires newer versions of modules the lab uses, and the go command
// raises the main module's go line to its dependencies' and resolves every
// module to the highest version required. So labtest builds, in its cache
// directory, a module for each module whose packages it needs (semrpc and
// the few that semrpc's labrpc imports): the needed packages' files only,
// under a go.mod that says the lab's go version and requires nothing.
// Each file gets its own module's go version back through a //go:build
// line, which sets a file's language version. The -modfile copy of the
// lab's go.mod requires those modules and replaces them by the
// directories; it is used read-only, so nothing is resolved anew. A module
// the lab requires itself is left at the lab's version.

// labtestPackages are the semrpc packages a rewritten lab imports.
var labtestPackages = []string{semrpcLabrpc, semrpcLabgob, semrpcModule + "/labrpc/labtest"}

// depPackage is what labtest reads of go list -json about a package it
// copies.
type depPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	EmbedFiles []string
	Module     *struct {
		Path      string
		Version   string
		Dir       string
		GoVersion string
	}
}

// copiedModule is a module whose needed packages labtest copies.
type copiedModule struct {
	path, version, dir, goVersion string
	pkgDirs                       []string
	embeds                        map[string][]string // package dir → embedded files
}

// neededModules lists, from semrpc's source in dir, the modules of every
// package that labtestPackages import, semrpc's included.
func neededModules(dir string) ([]*copiedModule, error) {
	args := append([]string{"list", "-deps", "-json"}, labtestPackages...)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list in %s: %v\n%s", dir, err, stderr.Bytes())
	}
	byPath := map[string]*copiedModule{}
	var mods []*copiedModule
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p depPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list: %v", err)
		}
		if p.Standard || p.Module == nil {
			continue
		}
		m := byPath[p.Module.Path]
		if m == nil {
			m = &copiedModule{path: p.Module.Path, version: p.Module.Version, dir: p.Module.Dir, goVersion: p.Module.GoVersion, embeds: map[string][]string{}}
			if m.version == "" {
				m.version = "v0.0.0-00010101000000-000000000000"
			}
			byPath[m.path] = m
			mods = append(mods, m)
		}
		m.pkgDirs = append(m.pkgDirs, p.Dir)
		m.embeds[p.Dir] = p.EmbedFiles
	}
	return mods, nil
}

// writeModfile writes, in work, a copy of the lab's go.mod that requires
// the modules labtest needs from copies in its cache directory (the
// user's cache directory, semrpc-labtest), and the lab's go.sum beside it.
func writeModfile(gomod string, modSrc []byte, semrpc, work string) (string, error) {
	mods, err := neededModules(semrpc)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	cache = filepath.Join(cache, "semrpc-labtest")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	pruneCache(cache)
	labGo := goDirective(modSrc)
	labRequires := requiredModules(modSrc)
	var b bytes.Buffer
	b.Write(modSrc)
	if len(modSrc) > 0 && modSrc[len(modSrc)-1] != '\n' {
		b.WriteByte('\n')
	}
	b.WriteString("\n// Added by labtest, for this run only.\n")
	for _, m := range mods {
		if _, ok := labRequires[m.path]; ok && m.path != semrpcModule {
			continue // the lab pins this module itself: its version stays
		}
		to, err := copyModule(m, cache, labGo)
		if err != nil {
			return "", err
		}
		if _, ok := labRequires[m.path]; !ok {
			fmt.Fprintf(&b, "require %s %s\n", m.path, m.version)
		}
		fmt.Fprintf(&b, "replace %s => %s\n", m.path, quoteModPath(to))
	}
	path := filepath.Join(work, "go.mod")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return "", err
	}
	sum, err := os.ReadFile(strings.TrimSuffix(gomod, ".mod") + ".sum")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(work, "go.sum"), sum, 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// copyModule copies the needed packages of m (their non-test Go files,
// assembly and headers, and embedded files), under a go.mod of the lab's
// go version, to a directory named by their contents in labtest's cache
// directory, and returns it. The directory stays from one run to the next,
// so that the go command's build cache, which keys packages by directory,
// compiles them once.
func copyModule(m *copiedModule, cache, labGo string) (string, error) {
	files, err := moduleFiles(m, labGo)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(h, "%s %d\n", name, len(files[name]))
		h.Write(files[name])
	}
	top := filepath.Join(cache, fmt.Sprintf("%x", h.Sum(nil))[:24])
	dir := filepath.Join(top, filepath.FromSlash(m.path))
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		now := time.Now()
		os.Chtimes(top, now, now) // in use: see pruneCache
		return dir, nil
	}
	// Written beside, then renamed: labtest runs side by side share it.
	tmp, err := os.MkdirTemp(cache, "tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, name := range names {
		path := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "go.mod")); serr == nil {
			return dir, nil // another labtest won the race
		}
		return "", err
	}
	return dir, nil
}

// cacheUnusedFor is how long a copy in labtest's cache directory may stay
// unused before a run removes it (each version of semrpc adds a copy).
const cacheUnusedFor = 30 * 24 * time.Hour

// pruneCache removes the copies no run has used for cacheUnusedFor.
func pruneCache(cache string) {
	entries, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.IsDir() || time.Since(info.ModTime()) < cacheUnusedFor {
			continue
		}
		os.RemoveAll(filepath.Join(cache, e.Name()))
	}
}

// moduleFiles returns the files of m's copy: slash path → contents.
func moduleFiles(m *copiedModule, labGo string) (map[string][]byte, error) {
	files := map[string][]byte{}
	var mod bytes.Buffer
	fmt.Fprintf(&mod, "module %s\n", m.path)
	if labGo != "" {
		fmt.Fprintf(&mod, "\ngo %s\n", labGo)
	}
	files["go.mod"] = mod.Bytes()
	// Each file keeps its module's language version: raised from the
	// lab's, or lowered to it (as far down as go1.21, the lowest a file
	// can declare), so that loop variables and the like mean what the
	// module's authors meant.
	own := ""
	if m.goVersion != "" {
		mine, lab := version.Lang("go"+m.goVersion), version.Lang("go"+orDefault(labGo, "1.16"))
		if mine != lab && (version.Compare(mine, lab) > 0 || version.Compare(mine, "go1.21") >= 0) {
			own = mine
		}
	}
	for _, pkgDir := range m.pkgDirs {
		rel, err := filepath.Rel(m.dir, pkgDir)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("package directory %s is outside its module %s", pkgDir, m.dir)
		}
		entries, err := os.ReadDir(pkgDir)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || strings.HasSuffix(name, "_test.go") {
				continue
			}
			switch filepath.Ext(name) {
			case ".go", ".s", ".h":
				names = append(names, name)
			}
		}
		names = append(names, m.embeds[pkgDir]...)
		for _, name := range names {
			src, err := os.ReadFile(filepath.Join(pkgDir, name))
			if err != nil {
				return nil, err
			}
			if own != "" && strings.HasSuffix(name, ".go") {
				src = withGoVersion(src, own)
			}
			files[filepath.ToSlash(filepath.Join(rel, name))] = src
		}
	}
	return files, nil
}

// withGoVersion returns src with its build constraint and-ed with the
// release tag lang ("go1.25"), which makes lang the file's language
// version. The file's other constraints stay as they were, so the go
// command picks the same files for each platform and tag set.
func withGoVersion(src []byte, lang string) []byte {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.PackageClauseOnly)
	if err != nil {
		return src
	}
	header := src[:fset.Position(f.Package).Offset]
	var goBuild constraint.Expr
	goBuildAt, goBuildEnd := -1, -1
	var plusBuild []constraint.Expr
	off := 0
	for _, line := range bytes.SplitAfter(header, []byte("\n")) {
		text := strings.TrimSpace(string(line))
		switch {
		case constraint.IsGoBuild(text):
			if x, err := constraint.Parse(text); err == nil {
				goBuild, goBuildAt, goBuildEnd = x, off, off+len(bytes.TrimRight(line, "\r\n"))
			}
		case constraint.IsPlusBuild(text):
			if x, err := constraint.Parse(text); err == nil {
				plusBuild = append(plusBuild, x)
			}
		}
		off += len(line)
	}
	tag := &constraint.TagExpr{Tag: lang}
	if goBuild != nil {
		line := "//go:build " + (&constraint.AndExpr{X: tag, Y: goBuild}).String()
		return append(append(append([]byte(nil), src[:goBuildAt]...), line...), src[goBuildEnd:]...)
	}
	var expr constraint.Expr = tag
	for _, x := range plusBuild {
		expr = &constraint.AndExpr{X: expr, Y: x}
	}
	return append([]byte("//go:build "+expr.String()+"\n\n"), src...)
}

// goDirective reads the go line of a go.mod file ("" if it has none).
func goDirective(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(stripComment(sc.Text()))
		if len(f) == 2 && f[0] == "go" {
			return f[1]
		}
	}
	return ""
}

// requiredModules reads the require directives of a go.mod file: module
// path → version.
func requiredModules(gomod []byte) map[string]string {
	out := map[string]string{}
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(stripComment(sc.Text()))
		switch {
		case inBlock && len(f) == 1 && f[0] == ")":
			inBlock = false
		case inBlock && len(f) >= 2:
			out[strings.Trim(f[0], `"`)] = f[1]
		case len(f) >= 2 && f[0] == "require" && f[1] == "(":
			inBlock = true
		case len(f) >= 3 && f[0] == "require":
			out[strings.Trim(f[1], `"`)] = f[2]
		}
	}
	return out
}

func stripComment(line string) string {
	if i := strings.Index(line, "//"); i >= 0 {
		return line[:i]
	}
	return line
}

// quoteModPath quotes a directory for a go.mod replace directive when it
// holds characters the go.mod syntax would split on.
func quoteModPath(dir string) string {
	if strings.ContainsAny(dir, " \t\"'`()") {
		return fmt.Sprintf("%q", dir)
	}
	return dir
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
