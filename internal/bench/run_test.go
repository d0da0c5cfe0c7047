package bench

import "testing"

func TestSubscribeServersSpreadFleets(t *testing.T) {
	cfg := Config{
		Server:           "http://127.0.0.1:8000",
		SubscribeServers: []string{"http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003"},
		Connections:      10,
		Rate:             1,
	}
	if err := cfg.setDefaults(ScenarioFanout); err != nil {
		t.Fatal(err)
	}
	if cfg.Procs != 3 {
		t.Fatalf("procs %d, want one per node", cfg.Procs)
	}
	count := map[string]int{}
	for _, s := range splitSpecs(&cfg) {
		count[s.Server] += s.Count
	}
	if count["http://127.0.0.1:8001"] != 4 || count["http://127.0.0.1:8002"] != 3 || count["http://127.0.0.1:8003"] != 3 {
		t.Fatalf("subscribers per node %v", count)
	}
	bad := cfg
	bad.SubscribeServers = []string{"http://example.com:80"}
	if err := bad.setDefaults(ScenarioFanout); err == nil {
		t.Fatal("a non-loopback subscribe server was accepted")
	}
}
