package durable_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/heraldrt/herald/internal/engine"
	"github.com/heraldrt/herald/internal/engine/durable"
	"github.com/heraldrt/herald/internal/protocol"
)

// childDirEnv names the store directory of the publishing child process of
// TestKill9KeepsAcknowledged.
const childDirEnv = "HERALD_DURABLE_KILL_DIR"

// TestKill9KeepsAcknowledged runs a child process that publishes
// concurrently and reports every acknowledged position, kills it with
// SIGKILL mid-stream, then reopens the store: every acknowledged publication
// must be there, in its epoch, and offsets must continue after them.
func TestKill9KeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	acked := map[string][]protocol.StreamPosition{}
	r := bufio.NewReader(out)
	killed, total := false, 0
	for {
		line, err := r.ReadString('\n')
		if err != nil { // io.EOF after the kill; a partial last line is not an ack
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		var ch, epoch string
		var off uint64
		if _, err := fmt.Sscanf(line, "ack %s %s %d\n", &ch, &epoch, &off); err != nil {
			continue // test framework output
		}
		acked[ch] = append(acked[ch], protocol.StreamPosition{Epoch: epoch, Offset: off})
		if total++; total == 3000 {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed, after %d channels' acks", len(acked))
	}

	e := open(t, durable.Config{Dir: dir})
	defer e.Close(context.Background())
	ctx := context.Background()
	for ch, positions := range acked {
		res, err := e.History(ctx, ch, engine.HistoryQuery{Limit: -1})
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		stored := make(map[uint64]bool, len(res.Publications))
		for _, p := range res.Publications {
			stored[p.Offset] = true
		}
		top := uint64(0)
		for _, pos := range positions {
			if pos.Epoch != res.Position.Epoch || !stored[pos.Offset] {
				t.Fatalf("%s: acknowledged %+v lost after kill -9 (store at %+v)", ch, pos, res.Position)
			}
			top = max(top, pos.Offset)
		}
		if res.Position.Offset < top {
			t.Fatalf("%s: position %+v behind acknowledged offset %d", ch, res.Position, top)
		}
		next, err := e.Publish(ctx, ch, []byte(`{}`), engine.PublishOptions{HistorySize: 1 << 20})
		if err != nil || next.Offset != res.Position.Offset+1 || next.Epoch != res.Position.Epoch {
			t.Fatalf("%s: publish after reopen at %+v (%v), want offset %d", ch, next, err, res.Position.Offset+1)
		}
	}
	t.Logf("all %d acknowledged publications on %d channels survived the kill", total, len(acked))
}

// TestKillChild is the child process of TestKill9KeepsAcknowledged: it
// publishes until killed and prints each acknowledgement.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("run by TestKill9KeepsAcknowledged")
	}
	e, err := durable.Open(context.Background(), durable.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for p := range 16 {
		wg.Go(func() {
			ch := fmt.Sprintf("kill:%d", p%4)
			for i := 0; ; i++ {
				pos, err := e.Publish(context.Background(), ch, fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i),
					engine.PublishOptions{HistorySize: 1 << 20})
				if err != nil {
					panic(err)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %s %s %d\n", ch, pos.Epoch, pos.Offset)
				// Flushed per ack so the parent sees exactly what was acked.
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
