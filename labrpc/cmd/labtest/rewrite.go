package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// edit replaces src[start:end] with text. Edits never span lines, so the
// line numbers of every error and stack trace stay those of the files on
// disk.
type edit struct {
	start, end int
	text       string
}

func applyEdits(src []byte, edits []edit) []byte {
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var out bytes.Buffer
	last := 0
	for _, e := range edits {
		out.Write(src[last:e.start])
		out.WriteString(e.text)
		last = e.end
	}
	out.Write(src[last:])
	return out.Bytes()
}

// swapImports returns the edits that replace import paths by those in
// swap (old path → new path).
func swapImports(fset *token.FileSet, f *ast.File, swap map[string]string) []edit {
	var edits []edit
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			continue
		}
		if to, ok := swap[path]; ok {
			edits = append(edits, edit{
				start: fset.Position(imp.Path.Pos()).Offset,
				end:   fset.Position(imp.Path.End()).Offset,
				text:  strconv.Quote(to),
			})
		}
	}
	return edits
}

// testFunc is a Test function that labtest wraps.
type testFunc struct {
	name string
	real bool // calls t.Run or t.Parallel itself: synctest refuses both
	// file (its base name) and line of the declaration: the wrapper says
	// it is there, so that what labtest reports against the wrapper names
	// the lab's test, not the generated file.
	file string
	line int
}

// wrapTests renames each top-level TestXxx(t *testing.T) of a test file to
// labtest_TestXxx and returns the edits and the tests. TestMain is left alone.
func wrapTests(fset *token.FileSet, f *ast.File) ([]edit, []testFunc) {
	testing := ""
	for _, imp := range f.Imports {
		if imp.Path.Value == `"testing"` {
			testing = "testing"
			if imp.Name != nil {
				testing = imp.Name.Name
			}
		}
	}
	if testing == "" || testing == "_" || testing == "." {
		return nil, nil
	}
	var edits []edit
	var tests []testFunc
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv != nil || fd.Body == nil || !isTestName(fd.Name.Name) {
			continue
		}
		param, ok := testingTParam(fd, testing)
		if !ok {
			continue
		}
		off := fset.Position(fd.Name.Pos()).Offset
		edits = append(edits, edit{start: off, end: off + len(fd.Name.Name), text: renamed(fd.Name.Name)})
		pos := fset.Position(fd.Pos())
		tests = append(tests, testFunc{name: fd.Name.Name, real: callsRunOrParallel(fd.Body, param), file: filepath.Base(pos.Filename), line: pos.Line})
	}
	return edits, tests
}

func renamed(test string) string { return "labtest_" + test }

// isTestName is go test's rule: Test, then nothing or a non-lower-case
// letter; TestMain is not a test.
func isTestName(name string) bool {
	if !strings.HasPrefix(name, "Test") || name == "TestMain" {
		return false
	}
	rest := name[len("Test"):]
	return rest == "" || !(rest[0] >= 'a' && rest[0] <= 'z')
}

// testingTParam reports whether fd takes exactly one *testing.T and returns
// its name.
func testingTParam(fd *ast.FuncDecl, testing string) (string, bool) {
	ps := fd.Type.Params.List
	if len(ps) != 1 || len(ps[0].Names) > 1 || fd.Type.Results != nil || fd.Type.TypeParams != nil {
		return "", false
	}
	star, ok := ps[0].Type.(*ast.StarExpr)
	if !ok {
		return "", false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "T" {
		return "", false
	}
	if x, ok := sel.X.(*ast.Ident); !ok || x.Name != testing {
		return "", false
	}
	if len(ps[0].Names) == 0 {
		return "_", true
	}
	return ps[0].Names[0].Name, true
}

func callsRunOrParallel(body *ast.BlockStmt, param string) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return !found
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == param && (sel.Sel.Name == "Run" || sel.Sel.Name == "Parallel") {
				found = true
			}
		}
		return !found
	})
	return found
}

// lineDirectives returns edits with line directives (/*line file:L:C*/),
// so that compile errors, vet reports and stack traces name the lab's file
// on disk, at its own line and column, rather than the overlay's copy in
// labtest's work directory: one before the package clause (after any build
// constraints, which must come first), and one after each of edits that
// changes the length of the text, so that the columns after it on the same
// line stay those of the file on disk.
func lineDirectives(fset *token.FileSet, f *ast.File, edits []edit) []edit {
	tf := fset.File(f.Package)
	if tf == nil {
		return edits
	}
	directive := func(offset int) string {
		p := fset.Position(tf.Pos(offset))
		if strings.Contains(p.Filename, "*/") || strings.ContainsAny(p.Filename, "\n\r") {
			return ""
		}
		return fmt.Sprintf("/*line %s:%d:%d*/", p.Filename, p.Line, p.Column)
	}
	out := make([]edit, 0, len(edits)+1)
	pkg := tf.Offset(f.Package)
	out = append(out, edit{start: pkg, end: pkg, text: directive(pkg)})
	for _, e := range edits {
		if len(e.text) != e.end-e.start {
			e.text += directive(e.end)
		}
		out = append(out, e)
	}
	return out
}

// wrapperFile is a new test file of package pkg that defines every test
// again, calling its renamed body through labtest. A test that runs in real
// time says so at -v, since labtest's promise is to say why.
func wrapperFile(pkg string, tests []testFunc) []byte {
	anyReal := false
	for _, tf := range tests {
		anyReal = anyReal || tf.real
	}
	var b bytes.Buffer
	// synctest needs the timer channels of Go 1.23 on, which a lab whose
	// go.mod says an older go version would not get by default.
	b.WriteString("//go:debug asynctimerchan=0\n\n")
	fmt.Fprintf(&b, "// Code generated by labtest; it exists only in go test's overlay.\n\npackage %s\n\n", pkg)
	b.WriteString("import (\n")
	if anyReal {
		b.WriteString("\tlabtest_fmt \"fmt\"\n")
	}
	b.WriteString("\tlabtest_testing \"testing\"\n\n\tlabtest_labtest \"github.com/semrpc/semrpc/labrpc/labtest\"\n)\n")
	for _, tf := range tests {
		b.WriteString("\n")
		if tf.file != "" && tf.line > 0 {
			// Each wrapper on one line, said to be the test's own.
			fmt.Fprintf(&b, "//line %s:%d\n", tf.file, tf.line)
		}
		if !tf.real {
			fmt.Fprintf(&b, "func %s(t *labtest_testing.T) { labtest_labtest.Virtual(t, %s) }\n", tf.name, renamed(tf.name))
			continue
		}
		fmt.Fprintf(&b, "func %s(t *labtest_testing.T) { if labtest_testing.Verbose() { labtest_fmt.Println(%q) }; labtest_labtest.Real(t, %s) }\n",
			tf.name, realNote(tf.name), renamed(tf.name))
	}
	return b.Bytes()
}

// realNote is what labtest prints at -v for a test it runs in real time
// because the test calls t.Run or t.Parallel.
func realNote(test string) string {
	return "labtest: " + test + " calls t.Run or t.Parallel, which synctest does not allow: it runs in real time"
}

// parseFile parses a Go file with its comments (build tags stay intact
// since edits are made on the bytes).
func parseFile(fset *token.FileSet, path string, src []byte) (*ast.File, error) {
	return parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
}
