// Package pgtest starts a throwaway PostgreSQL server for tests and
// benchmarks: it finds the server's programs (initdb, postgres) on PATH or
// under /usr/lib/postgresql/*/bin, initialises a cluster in a temporary
// directory, starts it on a free port of 127.0.0.1 (TCP only, no Unix
// socket) and, on Stop, shuts it down and removes the directory. When the
// process runs as root, the server runs as an unprivileged user (postgres
// if that account exists, else nobody), which owns the data directory:
// PostgreSQL refuses to run as root.
//
// One server serves a whole test package (Main, from TestMain); each test
// gets a database of its own (Server.NewDatabase), removed with the server.
// A missing PostgreSQL is a failure, never a skip: the message says how
// to install it.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// InstallHint is what a test that cannot start PostgreSQL prints.
const InstallHint = "install PostgreSQL's server (Debian/Ubuntu: apt-get install -y postgresql; " +
	".ci/run does it), or put the directory holding initdb and postgres on PATH"

// Options configures a server. A nil *Options means the defaults.
type Options struct {
	// Durable keeps fsync and synchronous commit on, as a production
	// server has them: for benchmarks. The default turns both off, which
	// loses nothing when only the processes crash (tests SIGKILL servers,
	// never the machine) and makes tests fast.
	Durable bool
}

// Server is a running throwaway PostgreSQL server.
type Server struct {
	dir  string // removed by Stop
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *os.File

	dbs  atomic.Uint64
	once sync.Once
}

// Start initialises a cluster in a new temporary directory and starts a
// server on it. The error says what failed and how to install PostgreSQL
// if its programs were not found.
func Start(opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	base := os.TempDir()
	if fi, err := os.Stat(base); cred != nil && (err != nil || fi.Mode().Perm()&0o001 == 0) {
		base = "/tmp" // the server's user could not reach a private TMPDIR
	}
	dir, err := os.MkdirTemp(base, "semrpc-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		// The server's user must reach and own its data directory.
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "postgres.log")
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		err = s.start(bin, data, logPath, port, cred, o)
		if err == nil {
			ok = true
			return s, nil
		}
		if attempt == 2 {
			return nil, err
		}
	}
}

// start starts postgres on port and waits until it accepts connections.
func (s *Server) start(bin, data, logPath string, port int, cred *syscall.Credential, o Options) error {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	args := []string{"-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB"}
	if !o.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig: if the test binary dies, the server shuts down too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.port, s.cmd, s.done, s.log = port, cmd, done, log
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			log.Close()
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgtest: postgres exited at start:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("pgtest: postgres did not accept connections within 30s: %v", err)
		}
	}
}

// URL returns the connection string of database db on the server, as
// the superuser postgres.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// CreateDatabase creates a new empty database and returns its connection
// string.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.dbs.Add(1))
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	create := "CREATE DATABASE " + name
	if major, _, _ := strings.Cut(conn.PgConn().ParameterStatus("server_version"), "."); atoiOr0(major) >= 15 {
		// Copying the template's files is faster than writing them
		// through the WAL (15's default) for a database this small.
		create += " STRATEGY FILE_COPY"
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return "", fmt.Errorf("pgtest: creating database: %w", err)
	}
	return s.URL(name), nil
}

// DropDatabase drops the database of url, closing its connections.
func (s *Server) DropDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{cfg.Database}.Sanitize()+" WITH (FORCE)")
	return err
}

// NewDatabase creates a database for t and returns its connection string.
// It fails t if it cannot. The database is not dropped when t ends (that
// takes as long as creating it): it goes with the server, at Stop.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	if s == nil {
		t.Fatalf("pgtest: no PostgreSQL server (TestMain must call pgtest.Main): %s", InstallHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := s.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 10 s) and
// removes its directory. It is safe to call more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			s.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
				<-s.done
			}
			s.log.Close()
		}
		os.RemoveAll(s.dir)
	})
}

// Main runs a test package's tests with one server, which *srv points to
// while they run, and exits with their status. A server that cannot start
// fails the package with a message saying how to install PostgreSQL.
// Call it from TestMain, with the *testing.M or anything that runs the
// tests (a wrapper that checks for leaked goroutines, say).
func Main(m interface{ Run() int }, srv **Server, opts *Options) {
	s, err := Start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot start PostgreSQL for the tests: %v\n%s\n", err, InstallHint)
		os.Exit(1)
	}
	*srv = s
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

// findBin returns the directory that holds initdb and postgres: the one
// on PATH if there is one, else the newest /usr/lib/postgresql/*/bin.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL's initdb and postgres not found on PATH nor under /usr/lib/postgresql/*/bin: " + InstallHint)
}

// atoiOr0 is strconv.Atoi, 0 for what is not a number.
func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// versionOf returns the major version in /usr/lib/postgresql/N/bin.
func versionOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// serverCredential returns the user the server must run as: nil (the
// current user) unless the process runs as root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgtest: running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	_, port, _ := strings.Cut(l.Addr().String(), ":")
	return strconv.Atoi(port)
}
