package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisEnv names the environment variable that points standalone Redis tests
// at an existing server (a redis:// URL) instead of starting one. Tests
// sharing such a server must keep their keys apart, for example with a
// random key prefix.
const RedisEnv = "HERALD_TEST_REDIS"

// redisStartTimeout bounds how long a started redis-server, cluster or
// sentinel may take to become ready.
const redisStartTimeout = 20 * time.Second

// RedisServer is a redis-server process started for one test. It keeps no
// data on disk (no RDB, no AOF), so a restart loses everything, as a Redis
// without persistence does.
type RedisServer struct {
	// Addr is the host:port the server listens on; it stays the same across
	// Restart.
	Addr string
	conf string   // configuration file, given before every other argument
	args []string // arguments after the port, kept for Restart
	log  *LockedBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedis starts a standalone redis-server on a free loopback port and
// returns its URL. When HERALD_TEST_REDIS is set it returns that URL and a nil
// server instead: callers that need to restart or kill the server skip then.
// The process is killed when the test ends.
func StartRedis(t testing.TB) (url string, r *RedisServer) {
	t.Helper()
	if u := os.Getenv(RedisEnv); u != "" {
		return u, nil
	}
	r = startRedisServer(t, t.TempDir(), "")
	return "redis://" + r.Addr, r
}

// startRedisServer runs redis-server in dir with the configuration file conf
// (none if "") and extra arguments, retrying on another port if the chosen
// one was taken in the meantime.
func startRedisServer(t testing.TB, dir, conf string, extra ...string) *RedisServer {
	t.Helper()
	requireRedisBinaries(t)
	var lastErr error
	for range 5 {
		port, err := freeRedisPort(slices.Contains(extra, "--cluster-enabled"))
		if err != nil {
			t.Fatalf("redis: no free port: %v", err)
		}
		r := &RedisServer{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			conf: conf,
			args: append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}, extra...),
		}
		if lastErr = r.start(); lastErr == nil {
			t.Cleanup(r.stop)
			return r
		}
	}
	t.Fatalf("redis: %v", lastErr)
	return nil
}

// requireRedisBinaries stops a test that must run Redis processes of its own
// when the binaries are missing: it fails, unless RedisEnv names a server, in
// which case the tester chose to run the suite on that server alone and the
// test skips, saying why.
func requireRedisBinaries(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv(RedisEnv) != "" {
				t.Skipf("%s not found in PATH: this test runs Redis processes of its own (a cluster, a sentinel, TLS or a restart), which the server of %s cannot stand in for", bin, RedisEnv)
			}
			t.Fatalf("%s not found in PATH: install Redis 7 or later, or set %s to a redis:// URL for the standalone tests", bin, RedisEnv)
		}
	}
}

// start runs the process and waits until it answers.
func (r *RedisServer) start() error {
	_, port, _ := net.SplitHostPort(r.Addr)
	r.log = &LockedBuffer{}
	r.done = make(chan struct{})
	var argv []string
	if r.conf != "" {
		argv = append(argv, r.conf)
	}
	argv = append(argv, "--port", port)
	r.cmd = exec.Command("redis-server", append(argv, r.args...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.done)
	}()
	pid := fmt.Sprintf("process_id:%d\r\n", r.cmd.Process.Pid)
	deadline := time.Now().Add(redisStartTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		select {
		case <-r.done:
			return fmt.Errorf("redis-server on %s exited before answering:\n%s", r.Addr, r.log)
		default:
		}
		// Asking for the process id, not just PING, makes sure the server
		// answering is this one and not another that took the port first.
		if info, err := RedisCommand(r.Addr, "INFO", "server"); err == nil && strings.Contains(info, pid) {
			return nil
		}
		if time.Now().After(deadline) {
			r.stop()
			return fmt.Errorf("redis-server on %s did not answer within %v:\n%s", r.Addr, redisStartTimeout, r.log)
		}
		time.Sleep(delay)
	}
}

// stop kills the process, if running, and waits for it to be gone.
func (r *RedisServer) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
	default:
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.done
	}
}

// Kill kills the server with SIGKILL and waits for it to be gone. Its data
// is lost; Restart brings it back empty on the same port.
func (r *RedisServer) Kill(t testing.TB) {
	t.Helper()
	r.stop()
}

// Restart kills the server and starts it again, empty, on the same port,
// returning once it answers. Clients see their connections drop.
func (r *RedisServer) Restart(t testing.TB) {
	t.Helper()
	r.stop()
	if err := r.start(); err != nil {
		t.Fatalf("redis: restart: %v", err)
	}
}

// FlushAll deletes every key on the server.
func (r *RedisServer) FlushAll(t testing.TB) {
	t.Helper()
	if reply, err := RedisCommand(r.Addr, "FLUSHALL"); err != nil || reply != "OK" {
		t.Fatalf("redis: FLUSHALL on %s: %q, %v", r.Addr, reply, err)
	}
}

// RedisCluster is a Redis Cluster of masters without replicas, started for
// one test.
type RedisCluster struct {
	Nodes []*RedisServer
}

// StartRedisCluster starts three cluster-enabled redis-servers, joins them
// into a cluster covering every slot, and returns a URL naming all of them
// (redis://first?addr=second&addr=third) once every node reports
// cluster_state:ok. The processes are killed when the test ends.
func StartRedisCluster(t testing.TB) (url string, c *RedisCluster) {
	t.Helper()
	const masters = 3
	c = &RedisCluster{}
	addrs := make([]string, masters)
	for i := range masters {
		dir := t.TempDir()
		n := startRedisServer(t, dir, "", "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000")
		c.Nodes = append(c.Nodes, n)
		addrs[i] = n.Addr
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	WaitFor(t, redisStartTimeout, "cluster_state:ok on every node", func() bool {
		for _, n := range c.Nodes {
			info, err := RedisCommand(n.Addr, "CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
		}
		return true
	})
	url = "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	return url, c
}

// MoveSlot moves hash slot, keys included, from the node that owns it to
// c.Nodes[to], the way a resharding moves each slot, and waits until every
// node agrees. Clients subscribed to the slot's shard channels on the old
// owner are unsubscribed by it.
func (c *RedisCluster) MoveSlot(t testing.TB, slot, to int) {
	t.Helper()
	ids := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		id, err := RedisCommand(n.Addr, "CLUSTER", "MYID")
		if err != nil {
			t.Fatalf("CLUSTER MYID on %s: %v", n.Addr, err)
		}
		ids[i] = id
	}
	from := slices.Index(ids, c.slotOwner(t, c.Nodes[0], slot))
	if from < 0 {
		t.Fatalf("no node owns slot %d", slot)
	}
	if from == to {
		return
	}
	src, dst := c.Nodes[from], c.Nodes[to]
	n := strconv.Itoa(slot)
	do := func(r *RedisServer, args ...string) string {
		t.Helper()
		reply, err := RedisCommand(r.Addr, args...)
		if err != nil {
			t.Fatalf("%s on %s: %v", strings.Join(args, " "), r.Addr, err)
		}
		return reply
	}
	do(dst, "CLUSTER", "SETSLOT", n, "IMPORTING", ids[from])
	do(src, "CLUSTER", "SETSLOT", n, "MIGRATING", ids[to])
	host, port, _ := net.SplitHostPort(dst.Addr)
	for {
		keys := do(src, "CLUSTER", "GETKEYSINSLOT", n, "100")
		if keys == "" {
			break
		}
		do(src, append([]string{"MIGRATE", host, port, "", "0", "5000", "KEYS"}, strings.Split(keys, "\n")...)...)
	}
	// The new owner first, then the old one, then the rest, as
	// redis-cli --cluster does.
	do(dst, "CLUSTER", "SETSLOT", n, "NODE", ids[to])
	do(src, "CLUSTER", "SETSLOT", n, "NODE", ids[to])
	for i, r := range c.Nodes {
		if i != from && i != to {
			do(r, "CLUSTER", "SETSLOT", n, "NODE", ids[to])
		}
	}
	WaitFor(t, redisStartTimeout, "every node to agree on the slot's new owner", func() bool {
		for _, r := range c.Nodes {
			if c.slotOwner(t, r, slot) != ids[to] {
				return false
			}
		}
		return true
	})
}

// slotOwner returns the id of the node that r says owns slot, or "".
func (c *RedisCluster) slotOwner(t testing.TB, r *RedisServer, slot int) string {
	t.Helper()
	nodes, err := RedisCommand(r.Addr, "CLUSTER", "NODES")
	if err != nil {
		t.Fatalf("CLUSTER NODES on %s: %v", r.Addr, err)
	}
	// Each line: id addr flags master ping pong epoch link slot-ranges...
	for line := range strings.Lines(nodes) {
		fields := strings.Fields(line)
		if len(fields) < 9 {
			continue
		}
		for _, r := range fields[8:] {
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			first, err1 := strconv.Atoi(lo)
			last, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && first <= slot && slot <= last {
				return fields[0]
			}
		}
	}
	return ""
}

// RedisSentinel is a Redis master watched by one Sentinel, started for one
// test.
type RedisSentinel struct {
	Master   *RedisServer
	Sentinel *RedisServer
	// MasterSet is the name the sentinel knows the master by.
	MasterSet string
}

// StartRedisSentinel starts a master and a sentinel monitoring it, and
// returns a URL that reaches the master through the sentinel
// (redis://sentinel?master_set=NAME) once the sentinel reports the master's
// address. The processes are killed when the test ends.
func StartRedisSentinel(t testing.TB) (url string, s *RedisSentinel) {
	t.Helper()
	s = &RedisSentinel{MasterSet: "herald-test", Master: startRedisServer(t, t.TempDir(), "")}
	host, port, _ := net.SplitHostPort(s.Master.Addr)
	dir := t.TempDir()
	// Sentinel rewrites its configuration file, so it must be a writable file
	// of its own.
	conf := filepath.Join(dir, "sentinel.conf")
	config := fmt.Sprintf("sentinel monitor %s %s %s 1\n"+
		"sentinel down-after-milliseconds %[1]s 5000\n"+
		"sentinel failover-timeout %[1]s 10000\n", s.MasterSet, host, port)
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Sentinel = startRedisServer(t, dir, conf, "--sentinel")
	WaitFor(t, redisStartTimeout, "the sentinel to report the master", func() bool {
		reply, err := RedisCommand(s.Sentinel.Addr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterSet)
		return err == nil && reply == host+"\n"+port
	})
	return "redis://" + s.Sentinel.Addr + "?master_set=" + s.MasterSet, s
}

// AddReplica starts a replica of the master and waits until it is in sync
// and the sentinel knows it, so that Failover can promote it.
func (s *RedisSentinel) AddReplica(t testing.TB) *RedisServer {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.Master.Addr)
	r := startRedisServer(t, t.TempDir(), "", "--replicaof", host, port)
	WaitFor(t, redisStartTimeout, "the replica to sync with the master", func() bool {
		info, err := RedisCommand(r.Addr, "INFO", "replication")
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	// The sentinel learns of replicas from the master's INFO, which it
	// reads every ten seconds.
	WaitFor(t, redisStartTimeout, "the sentinel to know the replica", func() bool {
		reply, err := RedisCommand(s.Sentinel.Addr, "SENTINEL", "REPLICAS", s.MasterSet)
		_, rport, _ := net.SplitHostPort(r.Addr)
		return err == nil && strings.Contains(reply, "\n"+rport+"\n")
	})
	return r
}

// Failover has the sentinel promote replica, which AddReplica started, and
// waits until the sentinel names it as the master, it acts as one, and the
// old master has been turned into its replica (so a write that succeeds
// from then on landed on the new master). s.Master becomes replica; the old
// master is returned.
func (s *RedisSentinel) Failover(t testing.TB, replica *RedisServer) (old *RedisServer) {
	t.Helper()
	WaitFor(t, redisStartTimeout, "the replica to catch up with the master", func() bool {
		m, err1 := replOffset(s.Master.Addr, "master_repl_offset")
		r, err2 := replOffset(replica.Addr, "slave_repl_offset")
		return err1 == nil && err2 == nil && m == r
	})
	// The sentinel judges a replica fit to promote from its latest PING and
	// INFO replies; on a busy machine those can lag, and it answers
	// NOGOODSLAVE until they come.
	WaitFor(t, redisStartTimeout, "the sentinel to accept a failover", func() bool {
		reply, err := RedisCommand(s.Sentinel.Addr, "SENTINEL", "FAILOVER", s.MasterSet)
		if err != nil && strings.Contains(err.Error(), "NOGOODSLAVE") || strings.Contains(reply, "NOGOODSLAVE") {
			return false
		}
		if err != nil || reply != "OK" {
			t.Fatalf("SENTINEL FAILOVER: %q, %v", reply, err)
		}
		return true
	})
	host, port, _ := net.SplitHostPort(replica.Addr)
	WaitFor(t, redisStartTimeout, "the sentinel to name the promoted replica", func() bool {
		reply, err := RedisCommand(s.Sentinel.Addr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterSet)
		return err == nil && reply == host+"\n"+port
	})
	WaitFor(t, redisStartTimeout, "the promoted replica to act as master", func() bool {
		role, err := RedisCommand(replica.Addr, "ROLE")
		return err == nil && strings.HasPrefix(role, "master")
	})
	WaitFor(t, redisStartTimeout, "the old master to become a replica of the new one", func() bool {
		info, err := RedisCommand(s.Master.Addr, "INFO", "replication")
		return err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_port:"+port+"\r") &&
			strings.Contains(info, "master_link_status:up")
	})
	old, s.Master = s.Master, replica
	return old
}

// replOffset reads a replication offset field from INFO replication.
func replOffset(addr, field string) (int64, error) {
	info, err := RedisCommand(addr, "INFO", "replication")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in INFO replication of %s", field, addr)
}

// freeRedisPort returns a loopback port nothing listens on. A cluster node
// also needs port+10000 free for its cluster bus.
func freeRedisPort(cluster bool) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !cluster {
			return port, nil
		}
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		_ = bus.Close()
		return port, nil
	}
	return 0, errors.New("no port pair free for a cluster node")
}

// RedisCommand sends one command to the Redis server at addr over a new
// connection and returns its reply as text: a status or bulk string as is,
// an integer in decimal, an array's elements joined by newlines. A Redis
// error reply is returned as an error. It lets tests drive a server without a
// client library.
func RedisCommand(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return "", err
	}
	return readRESP(bufio.NewReader(conn))
}

// readRESP reads one RESP2 reply as text (see RedisCommand).
func readRESP(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("redis: empty reply line")
	}
	switch body := line[1:]; line[0] {
	case '+', ':':
		return body, nil
	case '-':
		return "", errors.New(body)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return "", err // a nil bulk string reads as "" without error
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readRESP(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	default:
		return "", fmt.Errorf("redis: unexpected reply %q", line)
	}
}
