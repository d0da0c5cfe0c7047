package testkit

import (
	"bufio"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NATSEnv names an environment variable holding the nats:// URL of a server
// with JetStream that tests use instead of starting their own. Such a server
// is shared, so tests give their streams and buckets a NATSPrefix.
const NATSEnv = "HERALD_TEST_NATS"

// natsReadyTimeout bounds the wait for a started nats-server to accept
// connections; recovering JetStream data after a restart happens before it
// listens, so this covers that too.
const natsReadyTimeout = 20 * time.Second

// NATSServer is a nats-server with JetStream run by a test, or the external
// server named by NATSEnv.
type NATSServer struct {
	// URL is the nats:// URL clients connect to.
	URL string

	bin, addr, storeDir string
	cmd                 *exec.Cmd
	done                chan struct{}
	log                 *LockedBuffer
}

// StartNATS starts `nats-server -js` on a free loopback port with its
// JetStream store in a fresh t.TempDir(), waits until it accepts clients and
// kills it when the test ends. When NATSEnv is set it returns that server
// instead; Restart and Kill then skip the calling test.
func StartNATS(t testing.TB) *NATSServer {
	t.Helper()
	if url := os.Getenv(NATSEnv); url != "" {
		return &NATSServer{URL: url}
	}
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server" // Debian installs it outside a user's PATH
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("nats-server not found (install Debian's nats-server package, or set %s to a JetStream server's URL)", NATSEnv)
		}
	}
	s := &NATSServer{bin: bin, addr: freeLoopbackAddr(t), storeDir: t.TempDir()}
	s.URL = "nats://" + s.addr
	t.Cleanup(s.stop)
	s.start(t)
	return s
}

// NATSPrefix returns a short random name that keeps one test's subjects,
// streams and buckets apart from other tests' on a shared server.
func NATSPrefix() string {
	return "t" + strings.ToLower(rand.Text()[:10])
}

// Restart kills the server and starts it again on the same port with the
// same JetStream store, as a crash and a supervisor's restart would, waiting
// until it accepts clients again.
func (s *NATSServer) Restart(t testing.TB) {
	t.Helper()
	s.Kill(t)
	s.start(t)
}

// Kill stops the server with SIGKILL and waits for it to be gone.
func (s *NATSServer) Kill(t testing.TB) {
	t.Helper()
	if s.bin == "" {
		t.Skipf("the server from %s cannot be restarted by a test", NATSEnv)
	}
	s.stop()
}

// Log is what the server has written since it was last started.
func (s *NATSServer) Log() string {
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

func (s *NATSServer) start(t testing.TB) {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.addr)
	s.log = &LockedBuffer{}
	s.done = make(chan struct{})
	s.cmd = exec.Command(s.bin, "-a", host, "-p", port, "-js", "-sd", s.storeDir)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)

	deadline := time.Now().Add(natsReadyTimeout)
	for delay := 5 * time.Millisecond; !s.ready(); delay = min(2*delay, 100*time.Millisecond) {
		select {
		case <-s.done:
			t.Fatalf("nats-server exited before accepting clients:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not accept clients within %v:\n%s", natsReadyTimeout, s.Log())
		}
		time.Sleep(delay)
	}
}

// ready reports whether the server answers a connection with its INFO line,
// which it sends only once JetStream is up and listening.
func (s *NATSServer) ready() bool {
	conn, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "INFO ")
}

// stop kills the process, if running, and waits for it.
func (s *NATSServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// freeLoopbackAddr returns a loopback address whose port was free a moment
// ago. Another process could take it before the server binds it; the
// server then fails to start and the test says so.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
}
