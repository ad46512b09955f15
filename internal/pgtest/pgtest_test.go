package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

var srv *Server

func TestMain(m *testing.M) { Main(m, &srv, nil) }

func TestDatabasesAreSeparateAndDropped(t *testing.T) {
	ctx := context.Background()
	var urls []string
	for range 2 {
		url, err := srv.CreateDatabase(ctx)
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, url)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE only_here (x int)"); err != nil {
			t.Fatalf("%s: %v (a table of the other database seen here?)", url, err)
		}
		conn.Close(ctx)
	}
	for _, url := range urls {
		if err := srv.DropDatabase(ctx, url); err != nil {
			t.Fatal(err)
		}
		if conn, err := pgx.Connect(ctx, url); err == nil {
			conn.Close(ctx)
			t.Fatalf("%s still accepts connections after DropDatabase", url)
		}
	}
}

func TestServerRunsUnprivilegedAndStopRemovesItsDirectory(t *testing.T) {
	s, err := Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	var fsync string
	err = conn.QueryRow(ctx, "SELECT current_setting('fsync')").Scan(&fsync)
	conn.Close(ctx)
	if err != nil || fsync != "off" {
		t.Errorf("fsync = %q, %v; want off for tests", fsync, err)
	}
	pid := s.cmd.Process.Pid
	if os.Geteuid() == 0 {
		fi, err := os.Stat("/proc/" + itoa(pid))
		if err != nil {
			t.Fatal(err)
		}
		if uid := statUID(fi); uid == 0 {
			t.Errorf("postgres (pid %d) runs as root", pid)
		}
	}
	s.Stop()
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s after Stop: %v", s.dir, err)
	}
	if _, err := pgx.Connect(ctx, s.URL("postgres")); err == nil {
		t.Fatal("server still accepts connections after Stop")
	}
}
