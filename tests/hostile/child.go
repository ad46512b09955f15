//go:build linux

package hostile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"go.uber.org/goleak"
)

// Each attack runs in a process of its own: the process is the server's,
// so its heap, goroutines and descriptors are the attack's to measure from
// a clean start, and an attack that crashes the server (a fatal stack
// overflow, running out of memory) ends that process only, and is
// reported as a crash.

// childEnv names the attack a child process runs.
const childEnv = "SEMRPC_HOSTILE_ATTACK"

// resultMarker starts the line on which a child prints its Result.
const resultMarker = "HOSTILE-RESULT "

// childTimeout bounds one attack's process, beyond what it is told to
// wait for the server to close connections.
const childTimeout = 5 * time.Minute

// IsChild reports whether this process was started to run one attack.
func IsChild() bool { return os.Getenv(childEnv) != "" }

// ChildMain runs the attack this process was started for and prints its
// Result; it returns the process's exit code.
func ChildMain() int {
	name := os.Getenv(childEnv)
	a := attackNamed(name)
	if a == nil {
		fmt.Fprintf(os.Stderr, "hostile: no attack named %q\n", name)
		return 2
	}
	res := run(a, currentScale())
	// The server is closed: none of its goroutines may be left.
	if err := goleak.Find(); err != nil {
		res.miss("goroutines left after the server closed: %s", short(err.Error()))
	}
	b, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		return 2
	}
	fmt.Printf("\n%s%s\n", resultMarker, b)
	return 0
}

// RunIsolated runs the attack called name in a new process: exe (with
// args) must call ChildMain when IsChild, as the package's TestMain and
// tests/hostilereport do. A process that dies is reported as a crash.
func RunIsolated(ctx context.Context, exe string, args []string, name string) *Result {
	limit := childTimeout
	if wait, err := strconv.Atoi(os.Getenv(closeWaitEnv)); err == nil {
		limit += time.Duration(wait) * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"="+name)
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	start := time.Now()
	err := cmd.Run()
	if res := parseResult(stdout.Bytes()); res != nil {
		return res
	}
	res := &Result{Attack: name, Crashed: true, CloseAfter: -1, Elapsed: time.Since(start).Round(time.Millisecond)}
	if a := attackNamed(name); a != nil {
		res.Goal = a.goal
	}
	switch {
	case ctx.Err() != nil:
		res.Crash = fmt.Sprintf("no result within %v (killed)", limit)
	default:
		res.Crash = fmt.Sprintf("%v: %s", err, crashLine(stderr.String()))
	}
	res.miss("the server's process died: %s", res.Crash)
	return res
}

func parseResult(out []byte) *Result {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), resultMarker); ok {
			var res Result
			if json.Unmarshal([]byte(line), &res) == nil {
				return &res
			}
		}
	}
	return nil
}

// crashLine picks the line of a dead process's output that says why.
func crashLine(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		for _, p := range []string{"fatal error:", "panic:", "runtime: ", "SIG"} {
			if strings.HasPrefix(l, p) {
				return l
			}
		}
	}
	if i := strings.LastIndexByte(strings.TrimSpace(stderr), '\n'); i >= 0 {
		return strings.TrimSpace(stderr)[i+1:]
	}
	return strings.TrimSpace(stderr)
}

// tailBuffer keeps the first and last bytes written to it, at most max of
// each.
type tailBuffer struct {
	max        int
	head, tail []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.head); room > 0 {
		n := min(room, len(p))
		b.head = append(b.head, p[:n]...)
	}
	b.tail = append(b.tail, p...)
	if len(b.tail) > b.max {
		b.tail = b.tail[len(b.tail)-b.max:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	return string(b.head) + "\n…\n" + string(b.tail)
}
