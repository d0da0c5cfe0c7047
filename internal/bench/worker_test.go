package bench

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"
)

// The worker protocol in one process: spec, ready, finish, result; and a
// worker whose stdin closes gives up at once, closing its connections.
func TestRunWorker(t *testing.T) {
	base := startServer(t)
	spec := FleetSpec{Server: base, Transport: TransportWebSocket, Prefix: "bench:w-", Channels: 1, Count: 10, Sources: 1}
	for _, finish := range []bool{true, false} {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- RunWorker(context.Background(), inR, outW)
			outW.Close()
		}()
		enc := json.NewEncoder(inW)
		dec := json.NewDecoder(outR)
		if err := enc.Encode(workerCommand{Spec: &spec}); err != nil {
			t.Fatal(err)
		}
		var rep workerReport
		if err := dec.Decode(&rep); err != nil || rep.Ready == nil || rep.Ready.Connected != 10 {
			t.Fatalf("ready report %+v: %v", rep, err)
		}
		if finish {
			if err := enc.Encode(workerCommand{Cmd: "finish", Acked: []uint64{0}, Drain: time.Second}); err != nil {
				t.Fatal(err)
			}
			rep = workerReport{}
			if err := dec.Decode(&rep); err != nil || rep.Result == nil || rep.Result.Connected != 10 || rep.Result.Lost != 0 {
				t.Fatalf("result report %+v: %v", rep, err)
			}
		}
		inW.Close()
		go func() { _, _ = io.Copy(io.Discard, outR) }()
		select {
		case err := <-done:
			if finish && err != nil {
				t.Errorf("worker after finish: %v", err)
			}
			if !finish && err == nil {
				t.Error("worker whose stdin closed reported success")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("worker did not exit after its stdin closed")
		}
	}
}
