// Package testkit is the one place for helpers shared by Herald's tests:
// waiting on conditions with deadlines instead of sleeping, building and
// running the real herald binary as a child process, starting real
// redis-server (standalone, Cluster, Sentinel) and nats-server processes on
// free loopback ports, and a round-robin TCP balancer in front of several
// nodes.
package testkit

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// WaitFor polls cond until it returns true, failing the test with what when
// timeout passes first. Tests wait on conditions, never on bare sleeps.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

// ModuleRoot finds the repository root from the test's working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// BuildHerald builds cmd/herald into a temporary directory and returns the
// binary's path. The Go build cache makes repeated builds cheap.
func BuildHerald(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "herald")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/herald")
	cmd.Dir = ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/herald: %v\n%s", err, out)
	}
	return bin
}

// Herald is a running herald process.
type Herald struct {
	// Addr is the host:port the server listens on.
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu  sync.Mutex
	log strings.Builder
}

var listeningAddr = regexp.MustCompile(`herald listening.*?addr=(\S+)`)

// StartHerald runs `bin serve args...` and waits until it logs its listening
// address. The process is killed when the test ends if still running.
func StartHerald(t testing.TB, bin string, args ...string) *Herald {
	t.Helper()
	h := &Herald{done: make(chan struct{})}
	h.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	// A free TURN port, so that servers side by side never contend for
	// 3478; a --turn-addr flag still overrides it.
	h.cmd.Env = append(os.Environ(), "HERALD_LOG_FORMAT=text", "HERALD_TURN__ADDR=127.0.0.1:0")
	stderr, err := h.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.cmd.Stdout = h.cmd.Stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			h.mu.Lock()
			h.log.WriteString(line + "\n")
			h.mu.Unlock()
			if m := listeningAddr.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		h.err = h.cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		<-h.done
	})
	select {
	case h.Addr = <-addr:
	case <-h.done:
		t.Fatalf("herald exited before listening: %v\n%s", h.err, h.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("herald did not log its address within 30s\n%s", h.Log())
	}
	return h
}

// URL is the server's base URL followed by path.
func (h *Herald) URL(path string) string { return "http://" + h.Addr + path }

// PID is the process id of the running server, for reading its resource
// use from /proc.
func (h *Herald) PID() int { return h.cmd.Process.Pid }

// Log is everything the process wrote so far.
func (h *Herald) Log() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

// Kill9 kills the process with SIGKILL, as a crash or `kill -9` would, and
// waits for it to be gone.
func (h *Herald) Kill9(t testing.TB) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-h.done
}

// Stop sends SIGTERM and waits up to timeout for a clean exit, returning the
// process's exit error (nil for status 0).
func (h *Herald) Stop(t testing.TB, timeout time.Duration) error {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case <-h.done:
		return h.err
	case <-ctx.Done():
		t.Fatalf("herald did not exit within %v of SIGTERM\n%s", timeout, h.Log())
		return nil
	}
}

// LockedBuffer is an io.Writer that a test may read while a logger or a
// process writes to it from another goroutine.
type LockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
