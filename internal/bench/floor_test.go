package bench

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The loopback floor: what this machine's kernel alone costs to deliver one
// publication to many subscribers, with no server in the way. The stand-in
// server writes one frame per subscriber socket per publication, from one
// goroutine per core, with raw write(2) calls; the subscribers live in a
// second process (20,000 open files per process here) that reads them from
// one raw epoll loop per core. At the rates below nothing can be coalesced,
// so one write per delivery is what any server must pay, and the latency
// this benchmark measures (due time → read) is a lower bound for
// `herald bench fanout` at the same subscribers and rate.
//
//	go test -run '^$' -bench BenchmarkLoopbackFloor -benchtime 20x ./internal/bench/

// floorFrame is the size of one delivery: a WebSocket text frame carrying
// a `herald bench` publication push with its default 64-byte payload.
const floorFrame = 160

// floorReaderEnv names the listener a re-executed test binary dials as the
// subscribers' process, and how many connections it opens.
const floorReaderEnv = "HERALD_FLOOR_READER"

func BenchmarkLoopbackFloor(b *testing.B) {
	for _, c := range []struct {
		subscribers int
		rate        int
	}{
		// One publication at a time: how long 10,000 deliveries take with
		// no backlog, the least latency any server could show for it.
		{10000, 1},
		{1000, 10},
		// The rates of the latency targets, where one write per
		// delivery saturates this machine (a server that packs frames per
		// write once a client falls behind does better than this).
		{10000, 10},
		{1000, 100},
	} {
		b.Run(fmt.Sprintf("subscribers=%d/rate=%d", c.subscribers, c.rate), func(b *testing.B) {
			benchFloor(b, c.subscribers, time.Second/time.Duration(c.rate))
		})
	}
}

// floorReport is what the subscribers' process prints when every
// connection has reached its end.
type floorReport struct {
	Frames     uint64        `json:"frames"`
	CPUSeconds float64       `json:"cpu_seconds"`
	Latency    HistogramData `json:"latency"`
	Err        string        `json:"error,omitempty"`
}

// BenchmarkLoopbackFloorSpread is the floor of `herald bench spread` at its
// target (10,000 channels of one subscriber each, 20,000 publishes/s): one
// frame per delivery to a random socket, made in the generator's own way,
// each due at k/rate and written at the first 1 ms tick after it is due,
// stamped with its due time. Two of the run's three wake-ups are here (the
// publisher's timer, the subscriber's read); the server's part is only the
// write. One iteration is one delivery:
//
//	go test -run '^$' -bench BenchmarkLoopbackFloorSpread -benchtime 400000x ./internal/bench/
func BenchmarkLoopbackFloorSpread(b *testing.B) {
	const subscribers, rate = 10000, 20000
	rig := startFloorRig(b, subscribers)
	defer rig.close()
	pick := pickRandom(subscribers)
	frame := make([]byte, floorFrame)
	b.ResetTimer()
	cpu0 := selfCPU()
	start := time.Now()
	at := func(k int) time.Time { return start.Add(time.Duration(k) * time.Second / rate) }
	for k := 0; k < b.N; {
		time.Sleep(max(time.Until(at(k)), time.Millisecond))
		due := min(int(time.Since(start)*rate/time.Second)+1, b.N)
		for ; k < due; k++ {
			binary.LittleEndian.PutUint64(frame, uint64(at(k).UnixNano()))
			if _, err := syscall.Write(rig.fds[pick()], frame); err != nil {
				b.Fatalf("write: %v", err)
			}
		}
	}
	rig.finish(b, uint64(b.N), selfCPU()-cpu0)
}

func benchFloor(b *testing.B, subscribers int, interval time.Duration) {
	rig := startFloorRig(b, subscribers)
	defer rig.close()
	fds := rig.fds
	writers := runtime.GOMAXPROCS(0)
	share := (len(fds) + writers - 1) / writers
	frame := make([]byte, floorFrame)
	b.ResetTimer()
	cpu0 := selfCPU()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		binary.LittleEndian.PutUint64(frame, uint64(due.UnixNano()))
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w*share < len(fds); w++ {
			part := fds[w*share : min((w+1)*share, len(fds))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, fd := range part {
					if _, err := syscall.Write(fd, frame); err != nil {
						errs <- fmt.Errorf("write: %w", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
	}
	rig.finish(b, uint64(b.N)*uint64(subscribers), selfCPU()-cpu0)
}

// floorRig is the stand-in server's side of a floor benchmark: the
// subscriber sockets it accepted and the subscribers' process reading them.
type floorRig struct {
	ln     net.Listener
	reader *exec.Cmd
	out    io.Reader
	conns  []net.Conn
	fds    []int
}

func startFloorRig(b *testing.B, subscribers int) *floorRig {
	if _, err := raiseFileLimit(); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	r := &floorRig{ln: ln}
	exe, err := os.Executable()
	if err != nil {
		r.close()
		b.Fatal(err)
	}
	r.reader = exec.Command(exe, "-test.run=^$")
	r.reader.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", floorReaderEnv, ln.Addr(), subscribers))
	r.reader.Stderr = os.Stderr
	if r.out, err = r.reader.StdoutPipe(); err != nil {
		r.close()
		b.Fatal(err)
	}
	if err := r.reader.Start(); err != nil {
		r.reader = nil
		r.close()
		b.Fatal(err)
	}
	r.conns = make([]net.Conn, 0, subscribers)
	r.fds = make([]int, 0, subscribers)
	for len(r.conns) < subscribers {
		c, err := ln.Accept()
		if err != nil {
			r.close()
			b.Fatal(err)
		}
		r.conns = append(r.conns, c)
		fd, err := rawFD(c)
		if err != nil {
			r.close()
			b.Fatal(err)
		}
		r.fds = append(r.fds, fd)
	}
	return r
}

// finish ends the subscribers' connections, reads their report and reports
// the latency and the CPU per delivery on both sides.
func (r *floorRig) finish(b *testing.B, deliveries uint64, writerCPU float64) {
	b.StopTimer()
	r.closeConns()
	var rep floorReport
	if err := json.NewDecoder(bufio.NewReader(r.out)).Decode(&rep); err != nil {
		b.Fatalf("reading the subscribers' report: %v", err)
	}
	if rep.Err != "" {
		b.Fatal(rep.Err)
	}
	if rep.Frames != deliveries {
		b.Fatalf("subscribers read %d frames, want %d", rep.Frames, deliveries)
	}
	var h Histogram
	h.MergeData(rep.Latency)
	p := h.Percentiles()
	b.ReportMetric(p.P50, "p50-ms")
	b.ReportMetric(p.P99, "p99-ms")
	b.ReportMetric(p.P999, "p99.9-ms")
	b.ReportMetric(p.Max, "max-ms")
	b.ReportMetric(writerCPU*1e6/float64(deliveries), "write-µs/delivery")
	b.ReportMetric(rep.CPUSeconds*1e6/float64(deliveries), "read-µs/delivery")
}

func (r *floorRig) closeConns() {
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

func (r *floorRig) close() {
	r.closeConns()
	r.ln.Close()
	if r.reader != nil {
		_ = r.reader.Process.Kill()
		_ = r.reader.Wait()
	}
}

// rawFD is the descriptor of a TCP connection, still owned by it.
func rawFD(c net.Conn) (int, error) {
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd int
	if err := sc.Control(func(d uintptr) { fd = int(d) }); err != nil {
		return 0, err
	}
	return fd, nil
}

// runFloorReader is the subscribers' process: it dials spec's listener
// spec's count of times, reads every frame from one epoll loop per core
// until the server closes every connection, and prints a floorReport.
func runFloorReader(spec string) {
	rep := floorRead(spec)
	_ = json.NewEncoder(os.Stdout).Encode(rep)
}

func floorRead(spec string) (rep floorReport) {
	fail := func(err error) floorReport { return floorReport{Err: err.Error()} }
	i := strings.LastIndexByte(spec, ',')
	if i < 0 {
		return fail(fmt.Errorf("bad %s %q", floorReaderEnv, spec))
	}
	addr := spec[:i]
	n, err := strconv.Atoi(spec[i+1:])
	if err != nil {
		return fail(fmt.Errorf("bad %s %q", floorReaderEnv, spec))
	}
	if _, err := raiseFileLimit(); err != nil {
		return fail(err)
	}
	loops := runtime.GOMAXPROCS(0)
	eps := make([]int, loops)
	for i := range eps {
		if eps[i], err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
			return fail(err)
		}
		defer syscall.Close(eps[i])
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fail(err)
		}
		conns = append(conns, c)
		fd, err := rawFD(c)
		if err != nil {
			return fail(err)
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
		if err := syscall.EpollCtl(eps[i%loops], syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return fail(err)
		}
	}

	var hist Histogram
	var mu sync.Mutex
	var frames uint64
	var firstErr error
	cpu0 := selfCPU()
	var wg sync.WaitGroup
	for l, ep := range eps {
		open := n / loops
		if l < n%loops {
			open++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := floorLoop(ep, open, &hist)
			mu.Lock()
			frames += got
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fail(firstErr)
	}
	return floorReport{Frames: frames, CPUSeconds: selfCPU() - cpu0, Latency: hist.Data()}
}

// floorLoop reads the connections registered with ep until open of them
// have ended, recording each whole frame's latency from its due time.
func floorLoop(ep, open int, hist *Histogram) (uint64, error) {
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	// A frame split across reads keeps its head here until its tail comes.
	partial := map[int32][]byte{}
	var frames uint64
	for open > 0 {
		n, err := syscall.EpollWait(ep, events, 5000)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return frames, err
		}
		if n == 0 {
			return frames, errors.New("no frame or end for 5 s")
		}
		now := time.Now().UnixNano()
		for _, ev := range events[:n] {
			m, err := syscall.Read(int(ev.Fd), buf)
			if errors.Is(err, syscall.EAGAIN) {
				continue
			}
			if err != nil {
				return frames, err
			}
			if m == 0 {
				if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil); err != nil {
					return frames, err
				}
				open--
				continue
			}
			data := buf[:m]
			head, split := partial[ev.Fd]
			if split {
				data = append(head, data...)
			}
			for len(data) >= floorFrame {
				hist.Record(time.Duration(now - int64(binary.LittleEndian.Uint64(data))))
				frames++
				data = data[floorFrame:]
			}
			if len(data) > 0 {
				partial[ev.Fd] = append(head[:0], data...)
			} else if split {
				delete(partial, ev.Fd)
			}
		}
	}
	return frames, nil
}
