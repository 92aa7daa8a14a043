// postgres.go: a throwaway PostgreSQL cluster, started once per test
// binary; Postgres gives each caller a fresh database on it. Packages that
// use it should stop the cluster when their tests end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// (or call StopAll from their own TestMain). Without that, a watchdog
// process still stops the cluster and removes its directory as soon as the
// test binary exits, however it exits.
//
// Environment:
//
//	PIER_PG_DSN=postgres://...   use this existing server instead of starting one
//	                             (the role must be allowed to CREATE DATABASE)
//	PIER_PG_BIN=/path/to/bin     where initdb and pg_ctl live
//	                             (default /usr/lib/postgresql/15/bin)
//	PIER_REQUIRE_SERVERS=1       fail instead of skip when no server can be had
//
// This file imports pgx's pgconn (pure Go) to run CREATE DATABASE.

package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultPGBin is where Debian's postgresql-15 package puts the server
// binaries.
const DefaultPGBin = "/usr/lib/postgresql/15/bin"

// pg is the one cluster of this test binary. Package state is the point
// here: the cluster is shared by every test in the binary.
var pg struct {
	once   sync.Once
	skip   string // why there is no server (binaries missing)
	err    error  // the server failed to start
	admin  string // DSN of a database to run CREATE DATABASE in
	prefix string // database name prefix
	owned  bool   // started here (versus PIER_PG_DSN)
	n      atomic.Int64
	stop   func() // stops an owned cluster; nil otherwise
}

// Postgres returns the DSN of a new, empty database for t, on the test
// binary's PostgreSQL cluster (started on first use: about half a second)
// or on the server named by PIER_PG_DSN. On an existing server the
// database is dropped when t ends. It skips t when PostgreSQL is not
// installed, or fails it if PIER_REQUIRE_SERVERS=1.
func Postgres(t testing.TB) (dsn string) {
	t.Helper()
	pg.once.Do(startPostgres)
	if pg.skip != "" {
		if os.Getenv("PIER_REQUIRE_SERVERS") == "1" {
			t.Fatalf("testenv: %s (PIER_REQUIRE_SERVERS=1)", pg.skip)
		}
		t.Skipf("testenv: %s", pg.skip)
	}
	if pg.err != nil {
		t.Fatalf("testenv: %v", pg.err)
	}

	name := fmt.Sprintf("%s%d", pg.prefix, pg.n.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adminExec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	if !pg.owned {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := adminExec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				t.Errorf("testenv: drop database %s: %v", name, err)
			}
		})
	}
	dsn, err := withDatabase(pg.admin, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dsn
}

// StopAll stops the servers this package started (pg_ctl stop -m
// immediate) and removes their directories. Call it from TestMain after
// m.Run; Postgres must not be called afterwards.
func StopAll() {
	stopServers()
	removePierBinary()
	if pg.stop != nil {
		pg.stop()
		pg.stop = nil
	}
}

// Main runs the tests, stops the servers and exits:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

func adminExec(ctx context.Context, sql string) error {
	conn, err := pgconn.Connect(ctx, pg.admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql).ReadAll()
	return err
}

// withDatabase returns dsn pointed at database name. URL and key=value
// DSNs are both accepted.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse postgres dsn: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return dsn + " dbname=" + name, nil // a later key wins
}

func startPostgres() {
	if dsn := os.Getenv("PIER_PG_DSN"); dsn != "" {
		pg.admin = dsn
		pg.prefix = "t_" + randomHex(4) + "_" // several runs may share the server
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := adminExec(ctx, "SELECT 1"); err != nil {
			pg.err = fmt.Errorf("connect to PIER_PG_DSN: %w", err)
		}
		return
	}

	bin := os.Getenv("PIER_PG_BIN")
	if bin == "" {
		bin = DefaultPGBin
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			pg.skip = fmt.Sprintf("PostgreSQL not found: no %s in %s (apt-get install postgresql-15, set PIER_PG_BIN, or set PIER_PG_DSN)", name, bin)
			return
		}
	}
	// initdb and postgres refuse to run as root: run them as postgres.
	var runAs []string
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			pg.skip = "running as root and there is no postgres user to run PostgreSQL as"
			return
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		runAs = []string{"runuser", "-u", "postgres", "--"}
	}

	c, err := newCluster(bin, runAs, uid, gid)
	if err != nil {
		pg.err = fmt.Errorf("start postgres: %w", err)
		return
	}
	pg.owned = true
	pg.prefix = "t_"
	pg.admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	pg.stop = c.stop
}

type cluster struct {
	base     string
	port     int
	watchdog *exec.Cmd
	pipe     io.WriteCloser // closing it (or exiting) makes the watchdog stop the cluster
}

func newCluster(bin string, runAs []string, uid, gid int) (*cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	base, err := os.MkdirTemp("", "pier-pg-")
	if err != nil {
		return nil, err
	}
	data, sock := filepath.Join(base, "data"), filepath.Join(base, "sock")
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(base)
		}
	}()
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	if uid >= 0 {
		err := filepath.WalkDir(base, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			return nil, err
		}
	}

	cmd := func(name string, args ...string) *exec.Cmd {
		argv := append(append(append([]string{}, runAs...), filepath.Join(bin, name)), args...)
		c := exec.CommandContext(ctx, argv[0], argv[1:]...)
		c.Dir = base
		return c
	}
	if out, err := cmd("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, bytesTail(out))
	}

	// The watchdog outlives this process just long enough to clean up:
	// it waits for EOF on its stdin, which comes when the pipe is closed
	// by StopAll or by the exit of this process. Its own process group
	// keeps a Ctrl-C meant for `go test` from killing it first.
	c := &cluster{base: base}
	script := `cat >/dev/null; base=$1; shift; "$@" -D "$base/data" -m immediate -w -t 30 stop >/dev/null 2>&1; rm -rf -- "$base"`
	wd := exec.Command("sh", append([]string{"-c", script, "sh", base}, append(append([]string{}, runAs...), filepath.Join(bin, "pg_ctl"))...)...)
	wd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.pipe, err = wd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := wd.Start(); err != nil {
		return nil, fmt.Errorf("start watchdog: %w", err)
	}
	c.watchdog = wd
	ok = true // from here on the watchdog removes base

	// A free port can be taken between the probe and the bind: retry.
	var startErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, errors.Join(err, c.shutdown())
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s "+
			"-c fsync=off -c synchronous_commit=off -c full_page_writes=off "+
			"-c max_connections=200 -c shared_buffers=32MB", port, sock)
		out, err := cmd("pg_ctl", "-D", data, "-l", filepath.Join(base, "postgres.log"), "-w", "-t", "30",
			"-o", opts, "start").CombinedOutput()
		if err == nil {
			c.port = port
			return c, nil
		}
		log, _ := os.ReadFile(filepath.Join(base, "postgres.log"))
		startErr = fmt.Errorf("pg_ctl start: %w: %s %s", err, bytesTail(out), bytesTail(log))
	}
	return nil, errors.Join(startErr, c.shutdown())
}

// stop stops the cluster and removes its directory, waiting for both.
func (c *cluster) stop() { _ = c.shutdown() }

func (c *cluster) shutdown() error {
	c.pipe.Close()
	return c.watchdog.Wait()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // never fails
	return hex.EncodeToString(b)
}

func bytesTail(b []byte) string {
	const limit = 2000
	s := strings.TrimSpace(string(b))
	if len(s) > limit {
		s = "..." + s[len(s)-limit:]
	}
	return s
}
