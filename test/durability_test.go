package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testkit"
)

const apiKey = "test-key"

// apiCall posts body to a server API endpoint and decodes the JSON answer.
func apiCall(client *http.Client, base, endpoint string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, base+endpoint, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "apikey "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s: status %d: %s", endpoint, resp.StatusCode, e)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

type ack struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

type storedPublication struct {
	Offset uint64 `json:"offset"`
	Data   struct {
		Worker int `json:"w"`
		Seq    int `json:"s"`
	} `json:"data"`
}

// TestKill9KeepsEveryAcknowledgedPublication runs the built binary on the
// durable engine, publishes from concurrent clients, kills the process with
// SIGKILL while publishes are still in flight, restarts it on the same data
// directory and checks that every acknowledged publication is in history, in
// order, at the offset it was acknowledged with, in the same epoch.
func TestKill9KeepsEveryAcknowledgedPublication(t *testing.T) {
	bin := testkit.BuildHerald(t)
	dataDir := t.TempDir()
	config := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(config, []byte(`
namespaces:
  - name: ledger
    history_size: 50000
    history_ttl: 24h
`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--addr", "127.0.0.1:0", "--engine", "durable", "--data-dir", dataDir, "--api-key", apiKey, "--config", config}
	h := testkit.StartHerald(t, bin, args...)

	const channel, workers, target = "ledger:main", 32, 10000
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	type acked struct {
		ack
		worker, seq int
	}
	var (
		mu    sync.Mutex
		acks  []acked
		count atomic.Int64
		wg    sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Keep publishing until the server dies under us: the kill lands
			// while requests are in flight, as a crash would.
			for seq := 0; ; seq++ {
				var a ack
				body := map[string]any{"channel": channel, "data": map[string]int{"w": w, "s": seq}}
				if err := apiCall(client, h.URL(""), "/api/publish", body, &a); err != nil {
					return
				}
				mu.Lock()
				acks = append(acks, acked{a, w, seq})
				mu.Unlock()
				count.Add(1)
			}
		}()
	}
	testkit.WaitFor(t, 2*time.Minute, fmt.Sprintf("%d acknowledged publishes", target), func() bool { return count.Load() >= target })
	h.Kill9(t)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d publications acknowledged before kill -9", len(acks))

	h2 := testkit.StartHerald(t, bin, args...)
	stored := map[uint64]storedPublication{}
	var epoch string
	var top uint64
	var since *ack
	for {
		var page struct {
			Publications []storedPublication `json:"publications"`
			Epoch        string              `json:"epoch"`
			Offset       uint64              `json:"offset"`
		}
		req := map[string]any{"channel": channel, "limit": 1000}
		if since != nil {
			req["since"] = since
		}
		if err := apiCall(client, h2.URL(""), "/api/history", req, &page); err != nil {
			t.Fatal(err)
		}
		epoch, top = page.Epoch, page.Offset
		if len(page.Publications) == 0 {
			break
		}
		for _, p := range page.Publications {
			if prev := uint64(len(stored)); p.Offset != prev+1 {
				t.Fatalf("history offset %d follows %d: not in order or a gap", p.Offset, prev)
			}
			stored[p.Offset] = p
		}
		since = &ack{Offset: page.Publications[len(page.Publications)-1].Offset, Epoch: page.Epoch}
	}
	if uint64(len(stored)) != top {
		t.Fatalf("history holds %d publications, channel offset is %d", len(stored), top)
	}
	for _, a := range acks {
		if a.Epoch != epoch {
			t.Fatalf("acknowledged in epoch %q, history is in epoch %q", a.Epoch, epoch)
		}
		p, ok := stored[a.Offset]
		if !ok {
			t.Fatalf("acknowledged publication at offset %d (worker %d seq %d) is missing after kill -9", a.Offset, a.worker, a.seq)
		}
		if p.Data.Worker != a.worker || p.Data.Seq != a.seq {
			t.Fatalf("offset %d holds worker %d seq %d, acknowledged worker %d seq %d", a.Offset, p.Data.Worker, p.Data.Seq, a.worker, a.seq)
		}
	}
	if err := h2.Stop(t, 30*time.Second); err != nil {
		t.Fatalf("clean shutdown after restart: %v\n%s", err, h2.Log())
	}
}
