package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Worker processes. A run whose connections exceed what one process may
// open (20,000 files here) re-executes the binary as hidden workers, each
// holding a share of the connections on its own event loop; the parent
// keeps the publisher and merges the workers' reports. They talk in JSON
// values, one per line: commands on the worker's stdin, reports on its
// stdout; its stderr is the parent's log. A worker whose stdin closes (the
// parent exited or gave up) closes its connections and exits, and the
// kernel kills it if the parent dies first (Pdeathsig).

// workerCommand is a message to a worker. The first carries Spec; then
// "start" (begin churn) and "finish" (drain against Acked, report, exit).
type workerCommand struct {
	Spec  *FleetSpec    `json:"spec,omitempty"`
	Cmd   string        `json:"cmd,omitempty"`
	Acked []uint64      `json:"acked,omitempty"`
	Drain time.Duration `json:"drain,omitempty"`
}

// workerReport is a message from a worker: Ready once connected, Result
// after finish, or Error when it cannot go on.
type workerReport struct {
	Ready  *FleetResult `json:"ready,omitempty"`
	Result *FleetResult `json:"result,omitempty"`
	Error  string       `json:"error,omitempty"`
}

// RunWorker is the body of a worker process (`herald bench worker`): it
// reads commands from in and writes reports to out until finished, or
// until in ends.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	var first workerCommand
	if err := dec.Decode(&first); err != nil || first.Spec == nil {
		return fmt.Errorf("bench worker: no spec on stdin: %v", err)
	}
	if _, err := raiseFileLimit(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f, err := newFleet(*first.Spec)
	if err != nil {
		_ = enc.Encode(workerReport{Error: err.Error()})
		return err
	}
	defer f.close()
	cmds := make(chan workerCommand)
	go func() {
		defer close(cmds)
		defer cancel() // stdin ended: the parent is gone
		for {
			var c workerCommand
			if dec.Decode(&c) != nil {
				return
			}
			select {
			case cmds <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	connect := f.open(ctx)
	ready := f.result(nil, connect)
	if err := enc.Encode(workerReport{Ready: &ready}); err != nil {
		return err
	}
	for {
		select {
		case c, ok := <-cmds:
			if !ok {
				return errors.New("bench worker: stdin closed before finish")
			}
			switch c.Cmd {
			case "start":
				f.startChurn(ctx)
			case "finish":
				r := finishFleet(ctx, f, c.Acked, c.Drain, connect)
				return enc.Encode(workerReport{Result: &r})
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// remoteSubscribers is a set of worker processes.
type remoteSubscribers struct {
	cfg     *Config
	workers []*worker
}

type worker struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	enc     *json.Encoder
	reports chan workerReport
	exited  chan struct{}
}

func newRemoteSubscribers(cfg *Config, specs []FleetSpec) (*remoteSubscribers, error) {
	exe := cfg.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("bench: find own executable for workers: %w", err)
		}
	}
	args := cfg.WorkerArgs
	if args == nil {
		args = []string{"bench", "worker"}
	}
	r := &remoteSubscribers{cfg: cfg}
	for _, spec := range specs {
		w, err := startWorker(exe, args, cfg.Log, spec)
		if err != nil {
			r.close()
			return nil, err
		}
		r.workers = append(r.workers, w)
	}
	return r, nil
}

func startWorker(exe string, args []string, log io.Writer, spec FleetSpec) (*worker, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start worker %s: %w", exe, err)
	}
	w := &worker{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), reports: make(chan workerReport, 2), exited: make(chan struct{})}
	go func() {
		defer close(w.exited)
		dec := json.NewDecoder(stdout)
		for {
			var rep workerReport
			if err := dec.Decode(&rep); err != nil {
				break
			}
			w.reports <- rep
		}
		_ = cmd.Wait()
	}()
	if err := w.enc.Encode(workerCommand{Spec: &spec}); err != nil {
		w.kill()
		return nil, fmt.Errorf("bench: send spec to worker: %w", err)
	}
	return w, nil
}

// next waits up to timeout for the worker's next report.
func (w *worker) next(ctx context.Context, timeout time.Duration) (workerReport, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case rep := <-w.reports:
		if rep.Error != "" {
			return rep, fmt.Errorf("bench: worker %d: %s", w.cmd.Process.Pid, rep.Error)
		}
		return rep, nil
	case <-w.exited:
		select {
		case rep := <-w.reports:
			return rep, nil
		default:
		}
		return workerReport{}, fmt.Errorf("bench: worker %d exited: %v", w.cmd.Process.Pid, w.cmd.ProcessState)
	case <-t.C:
		return workerReport{}, fmt.Errorf("bench: worker %d sent nothing for %v", w.cmd.Process.Pid, timeout)
	case <-ctx.Done():
		return workerReport{}, ctx.Err()
	}
}

func (w *worker) kill() {
	_ = w.cmd.Process.Kill()
	<-w.exited
}

// each runs f on every worker at once and merges the reports it returns.
func (r *remoteSubscribers) each(f func(*worker) (*FleetResult, error)) (FleetResult, error) {
	var (
		mu    sync.Mutex
		total FleetResult
		errs  []error
		wg    sync.WaitGroup
	)
	for _, w := range r.workers {
		wg.Go(func() {
			res, err := f(w)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if res != nil {
				total.merge(*res)
			}
		})
	}
	wg.Wait()
	return total, errors.Join(errs...)
}

func (r *remoteSubscribers) open(ctx context.Context) (FleetResult, error) {
	return r.each(func(w *worker) (*FleetResult, error) {
		rep, err := w.next(ctx, r.cfg.ConnectTimeout+30*time.Second)
		if err == nil && rep.Ready == nil {
			err = errors.New("bench: worker reported no connect result")
		}
		return rep.Ready, err
	})
}

func (r *remoteSubscribers) start(context.Context) error {
	_, err := r.each(func(w *worker) (*FleetResult, error) {
		return nil, w.enc.Encode(workerCommand{Cmd: "start"})
	})
	return err
}

func (r *remoteSubscribers) finish(ctx context.Context, acked []uint64, drain time.Duration) (FleetResult, error) {
	return r.each(func(w *worker) (*FleetResult, error) {
		if err := w.enc.Encode(workerCommand{Cmd: "finish", Acked: acked, Drain: drain}); err != nil {
			return nil, err
		}
		rep, err := w.next(ctx, drain+time.Minute)
		if err == nil && rep.Result == nil {
			err = errors.New("bench: worker reported no result")
		}
		return rep.Result, err
	})
}

// close ends every worker: stdin closes, which tells it to close its
// connections and exit; one that has not within 10s is killed.
func (r *remoteSubscribers) close() {
	for _, w := range r.workers {
		_ = w.stdin.Close()
	}
	deadline := time.After(10 * time.Second)
	for _, w := range r.workers {
		select {
		case <-w.exited:
		case <-deadline:
			w.kill()
		}
	}
}
