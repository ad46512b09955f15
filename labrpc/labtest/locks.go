package labtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Which goroutine holds a lock? A sync.Mutex records no owner, and a stack
// trace shows where each goroutine is, not which locks it took on the way.
// What a trace does show is, for every function that has not returned,
// the line it is at. lockReader reads that function's source and proves a
// lock held at that line only when the function itself called X.Lock() on
// every path to the line and no X.Unlock() can have run since:
//
//   - the Lock is a statement of a block that encloses the line (not
//     inside an if, a loop or a switch before it), earlier than the line;
//   - no statement between them can unlock X: a plain X.Unlock(), or an
//     if, switch, select or loop that contains one (an if branch that
//     ends in return or continue does not count), or a function literal
//     called there; a deferred unlock runs only at return and does not
//     count;
//   - a lock taken before a loop that encloses the line is not proven if
//     the loop's body unlocks it anywhere (a later iteration may run
//     without it).
//
// What it cannot show, and so never claims: locks taken in a helper
// (rf.lock()) or in a caller whose frame was lost, locks held across a
// return (Lock in one function, Unlock in another), locks taken through a
// variable whose name changed (l := &rf.mu; l.Lock() and rf.mu.Unlock()),
// and anything in a file it cannot read (a binary built with -trimpath).
// Two goroutines are said to share a lock only when both reach it through
// the receivers of methods of the same type whose pointers, as the trace
// prints them, are equal.

// heldLock is a lock proven held by one frame of a goroutine.
type heldLock struct {
	expr  string // the lock as written: "rf.mu"
	read  bool   // taken with RLock
	at    string // where it was taken: "raft.go:805"
	frame frame  // the frame that holds it
	// recvType and recvPtr identify the instance when expr goes through
	// the method's receiver: "lab/raft.(*Raft)", "0xc0000a4000",
	// and field is the rest of expr (".mu"). Empty when unknown.
	recvType, recvPtr, field string
}

func (h heldLock) String() string {
	kind := ""
	if h.read {
		kind = " (read)"
	}
	return fmt.Sprintf("holding %s%s, locked at %s in %s", h.expr, kind, h.at, cleanName(h.frame.fn))
}

// sameInstance reports whether h and the lock a waiter wants are proven to
// be the same mutex.
func (h heldLock) sameInstance(w heldLock) bool {
	return h.recvPtr != "" && h.recvType == w.recvType && h.recvPtr == w.recvPtr && h.field == w.field
}

// lockReader reads the source of the frames it is asked about, once per
// file.
type lockReader struct {
	fset  *token.FileSet
	files map[string]*ast.File // nil: unreadable
}

func newLockReader() *lockReader {
	return &lockReader{fset: token.NewFileSet(), files: make(map[string]*ast.File)}
}

func (r *lockReader) file(path string) *ast.File {
	if f, ok := r.files[path]; ok {
		return f
	}
	var f *ast.File
	if filepath.IsAbs(path) && strings.HasSuffix(path, ".go") {
		if src, err := os.ReadFile(path); err == nil {
			f, _ = parser.ParseFile(r.fset, path, src, parser.SkipObjectResolution)
		}
	}
	r.files[path] = f
	return f
}

// splitPos splits "file.go:12" (as a frame prints it).
func splitPos(pos string) (file string, line int, ok bool) {
	i := strings.LastIndex(pos, ":")
	if i < 0 {
		return "", 0, false
	}
	line, err := strconv.Atoi(pos[i+1:])
	return pos[:i], line, err == nil
}

// held returns the locks g is proven to hold, from every frame of its
// stack outside the runtime and the standard library.
func (r *lockReader) held(g goroutine) []heldLock {
	var out []heldLock
	for _, f := range g.frames {
		if isPlumbing(f.fn) || wrapperRE.MatchString(f.fn) {
			continue
		}
		out = append(out, r.heldInFrame(f)...)
	}
	return out
}

// wanted returns the lock a goroutine waiting on a mutex asked for, as its
// source names it, or false if the call cannot be read.
func (r *lockReader) wanted(g goroutine) (heldLock, bool) {
	for i, f := range g.frames {
		if !isLockFrame(f.fn) {
			continue
		}
		for _, caller := range g.frames[i+1:] {
			if isPlumbing(caller.fn) {
				continue
			}
			fn, body, line, ok := r.function(caller)
			if !ok {
				return heldLock{}, false
			}
			var found *heldLock
			ast.Inspect(body, func(n ast.Node) bool {
				if found != nil {
					return false
				}
				if call, ok := n.(*ast.CallExpr); ok && r.fset.Position(call.Pos()).Line == line {
					if x, kind := lockCall(call); kind == opLock || kind == opRLock {
						h := r.describe(caller, fn, x, kind == opRLock, line)
						found = &h
					}
				}
				return true
			})
			if found == nil {
				return heldLock{}, false
			}
			return *found, true
		}
	}
	return heldLock{}, false
}

// function returns the innermost function (declaration or literal) of the
// frame's file that contains its line, the declaration it is in, and the
// line.
func (r *lockReader) function(f frame) (decl *ast.FuncDecl, body *ast.BlockStmt, line int, ok bool) {
	path, line, ok := splitPos(f.pos)
	if !ok {
		return nil, nil, 0, false
	}
	file := r.file(path)
	if file == nil {
		return nil, nil, 0, false
	}
	contains := func(n ast.Node) bool {
		return r.fset.Position(n.Pos()).Line <= line && line <= r.fset.Position(n.End()).Line
	}
	for _, d := range file.Decls {
		fd, isFunc := d.(*ast.FuncDecl)
		if !isFunc || fd.Body == nil || !contains(fd) {
			continue
		}
		body = fd.Body
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if lit, ok := n.(*ast.FuncLit); ok && contains(lit) {
				body = lit.Body
			}
			return n == nil || contains(n)
		})
		// A literal is the frame's function only if the frame says so
		// (Method.func1): a line may hold a literal that is only defined
		// there.
		if body != fd.Body && !closureRE.MatchString(f.fn) {
			body = fd.Body
		}
		return fd, body, line, true
	}
	return nil, nil, 0, false
}

// wrapperRE matches the compiler's wrappers: a go or defer statement's
// ("lab/raft.Make.gowrap1"), whose line is the statement's in the function
// that started the goroutine, and a method value's ("(*Raft).ticker-fm").
// Their lines say nothing of the goroutine's own locks.
var wrapperRE = regexp.MustCompile(`\.(gowrap|deferwrap)\d+$|-fm$`)

// closureRE matches the name of a function literal's frame:
// "lab/raft.Make.func1", "lab/raft.(*Raft).ticker.func2.1".
var closureRE = regexp.MustCompile(`\.func\d+(\.\d+)*$`)

// heldInFrame proves which locks the frame's function holds at its line.
func (r *lockReader) heldInFrame(f frame) []heldLock {
	decl, body, line, ok := r.function(f)
	if !ok {
		return nil
	}
	held := map[string]heldLock{} // by expr and mode
	r.walk(body.List, line, held, f, decl, body == decl.Body)
	out := make([]heldLock, 0, len(held))
	for _, h := range held {
		out = append(out, h)
	}
	sortHeld(out)
	return out
}

// walk applies the statements of list before the one containing line to
// held, then descends into that one.
func (r *lockReader) walk(list []ast.Stmt, line int, held map[string]heldLock, f frame, decl *ast.FuncDecl, isDecl bool) {
	for _, s := range list {
		start, end := r.fset.Position(s.Pos()).Line, r.fset.Position(s.End()).Line
		if start > line {
			return
		}
		if end < line || (start == line && end == line && !isCompound(s)) {
			if end < line {
				r.apply(s, held, f, decl, isDecl)
			}
			if end >= line {
				return
			}
			continue
		}
		// s contains line.
		r.descend(s, line, held, f, decl, isDecl)
		return
	}
}

// descend enters the compound statement s that contains line.
func (r *lockReader) descend(s ast.Stmt, line int, held map[string]heldLock, f frame, decl *ast.FuncDecl, isDecl bool) {
	inBlock := func(b *ast.BlockStmt) bool {
		return b != nil && r.fset.Position(b.Lbrace).Line <= line && line <= r.fset.Position(b.Rbrace).Line
	}
	loopBody := func(b *ast.BlockStmt) {
		// A later iteration may run without a lock the body releases.
		for k, h := range held {
			if unlocks(b, h.expr, h.read) {
				delete(held, k)
			}
		}
		r.walk(b.List, line, held, f, decl, isDecl)
	}
	switch s := s.(type) {
	case *ast.BlockStmt:
		r.walk(s.List, line, held, f, decl, isDecl)
	case *ast.LabeledStmt:
		r.descend(s.Stmt, line, held, f, decl, isDecl)
	case *ast.IfStmt:
		if inBlock(s.Body) {
			r.walk(s.Body.List, line, held, f, decl, isDecl)
		} else if s.Else != nil {
			r.descend(s.Else, line, held, f, decl, isDecl)
		}
	case *ast.ForStmt:
		if inBlock(s.Body) {
			loopBody(s.Body)
		}
	case *ast.RangeStmt:
		if inBlock(s.Body) {
			loopBody(s.Body)
		}
	case *ast.SwitchStmt:
		r.clauses(s.Body, line, held, f, decl, isDecl)
	case *ast.TypeSwitchStmt:
		r.clauses(s.Body, line, held, f, decl, isDecl)
	case *ast.SelectStmt:
		r.clauses(s.Body, line, held, f, decl, isDecl)
	}
	// Any other statement containing the line (an assignment, a call, a
	// send): the line is in it, and the statements before it are applied.
}

func (r *lockReader) clauses(body *ast.BlockStmt, line int, held map[string]heldLock, f frame, decl *ast.FuncDecl, isDecl bool) {
	for _, c := range body.List {
		var stmts []ast.Stmt
		switch c := c.(type) {
		case *ast.CaseClause:
			stmts = c.Body
		case *ast.CommClause:
			stmts = c.Body
		}
		if r.fset.Position(c.Pos()).Line <= line && line <= r.fset.Position(c.End()).Line {
			r.walk(stmts, line, held, f, decl, isDecl)
			return
		}
	}
}

// apply records the effect of s, a statement that ran entirely before the
// line, on held.
func (r *lockReader) apply(s ast.Stmt, held map[string]heldLock, f frame, decl *ast.FuncDecl, isDecl bool) {
	switch s := s.(type) {
	case *ast.ExprStmt:
		if call, ok := s.X.(*ast.CallExpr); ok {
			if x, kind := lockCall(call); kind != opNone {
				key := types.ExprString(x)
				switch kind {
				case opLock, opRLock:
					var d *ast.FuncDecl
					if isDecl {
						d = decl
					}
					h := r.describe(f, d, x, kind == opRLock, r.fset.Position(call.Pos()).Line)
					held[heldKey(key, h.read)] = h
				case opUnlock:
					delete(held, heldKey(key, false))
				case opRUnlock:
					delete(held, heldKey(key, true))
				}
				return
			}
		}
	case *ast.DeferStmt, *ast.GoStmt:
		return // runs at return, or on another goroutine
	case *ast.IfStmt:
		// A branch that leaves (return, continue, break, goto, panic)
		// never falls through to the line.
		for k, h := range held {
			if (!leaves(s.Body) && unlocks(s.Body, h.expr, h.read)) ||
				(s.Else != nil && !leavesStmt(s.Else) && unlocks(s.Else, h.expr, h.read)) ||
				unlocks(s.Init, h.expr, h.read) {
				delete(held, k)
			}
		}
		return
	}
	for k, h := range held {
		if unlocks(s, h.expr, h.read) {
			delete(held, k)
		}
	}
}

// describe makes the heldLock for x, locked at line of f's function; decl
// is the method whose receiver identifies the instance, or nil.
func (r *lockReader) describe(f frame, decl *ast.FuncDecl, x ast.Expr, read bool, line int) heldLock {
	path, _, _ := splitPos(f.pos)
	h := heldLock{expr: types.ExprString(x), read: read, at: fmt.Sprintf("%s:%d", filepath.Base(path), line), frame: f}
	if decl == nil || decl.Recv == nil || len(decl.Recv.List) == 0 || len(decl.Recv.List[0].Names) == 0 {
		return h
	}
	if _, ptr := decl.Recv.List[0].Type.(*ast.StarExpr); !ptr {
		return h
	}
	recv := decl.Recv.List[0].Names[0].Name
	root, field := splitRoot(x)
	if root != recv {
		return h
	}
	// "lab/raft.(*Raft).ticker" → "lab/raft.(*Raft)"; the first argument
	// word is the receiver, unless the trace marks it unreliable ("?").
	i := strings.LastIndex(f.fn, ").")
	arg := strings.TrimSpace(strings.SplitN(f.args, ",", 2)[0])
	if i < 0 || !strings.HasPrefix(arg, "0x") || strings.HasSuffix(arg, "?") {
		return h
	}
	h.recvType, h.recvPtr, h.field = f.fn[:i+1], arg, field
	return h
}

// splitRoot splits rf.mu.x into "rf" and ".mu.x"; root is "" for anything
// but a chain of selectors on an identifier.
func splitRoot(x ast.Expr) (root, field string) {
	switch x := x.(type) {
	case *ast.Ident:
		return x.Name, ""
	case *ast.SelectorExpr:
		root, field = splitRoot(x.X)
		if root == "" {
			return "", ""
		}
		return root, field + "." + x.Sel.Name
	case *ast.ParenExpr:
		return splitRoot(x.X)
	case *ast.StarExpr:
		return splitRoot(x.X)
	}
	return "", ""
}

func heldKey(expr string, read bool) string {
	if read {
		return "R " + expr
	}
	return "W " + expr
}

type lockOp int

const (
	opNone lockOp = iota
	opLock
	opRLock
	opUnlock
	opRUnlock
)

// lockCall recognises x.Lock(), x.RLock(), x.Unlock() and x.RUnlock().
func lockCall(call *ast.CallExpr) (ast.Expr, lockOp) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || len(call.Args) != 0 {
		return nil, opNone
	}
	switch sel.Sel.Name {
	case "Lock":
		return sel.X, opLock
	case "RLock":
		return sel.X, opRLock
	case "Unlock":
		return sel.X, opUnlock
	case "RUnlock":
		return sel.X, opRUnlock
	}
	return nil, opNone
}

// unlocks reports whether n contains a call that releases expr (in the
// given mode), deferred or not, in a function literal or not: anything
// that might.
func unlocks(n ast.Node, expr string, read bool) bool {
	if n == nil {
		return false
	}
	found := false
	ast.Inspect(n, func(m ast.Node) bool {
		if call, ok := m.(*ast.CallExpr); ok {
			if x, kind := lockCall(call); ((kind == opUnlock && !read) || (kind == opRUnlock && read)) && types.ExprString(x) == expr {
				found = true
			}
		}
		return !found
	})
	return found
}

// leaves reports whether a block's last statement leaves it for good
// (return, branch, panic).
func leaves(b *ast.BlockStmt) bool {
	return b != nil && len(b.List) > 0 && leavesStmt(b.List[len(b.List)-1])
}

func leavesStmt(s ast.Stmt) bool {
	switch s := s.(type) {
	case *ast.ReturnStmt, *ast.BranchStmt:
		return true
	case *ast.BlockStmt:
		return leaves(s)
	case *ast.ExprStmt:
		if call, ok := s.X.(*ast.CallExpr); ok {
			if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "panic" {
				return true
			}
		}
	}
	return false
}

// isCompound reports statements that contain other statements.
func isCompound(s ast.Stmt) bool {
	switch s.(type) {
	case *ast.BlockStmt, *ast.IfStmt, *ast.ForStmt, *ast.RangeStmt, *ast.SwitchStmt,
		*ast.TypeSwitchStmt, *ast.SelectStmt, *ast.LabeledStmt:
		return true
	}
	return false
}

func sortHeld(hs []heldLock) {
	for i := 1; i < len(hs); i++ {
		for j := i; j > 0 && hs[j].at+hs[j].expr < hs[j-1].at+hs[j-1].expr; j-- {
			hs[j], hs[j-1] = hs[j-1], hs[j]
		}
	}
}

// cleanName is a function's name as the lab's files spell it, without the
// prefix the labtest command renames Test functions with.
func cleanName(fn string) string {
	return strings.Replace(fn, ".labtest_Test", ".Test", 1)
}
