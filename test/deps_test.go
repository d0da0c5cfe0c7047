package test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/testkit"
)

// TestCoreDependsOnNoBackend keeps the domain free of its backends: the core,
// the protocol, the engine contract and the Go client must build without Pebble, nbio, or
// any Redis or NATS client, so those stay swappable behind their packages.
func TestCoreDependsOnNoBackend(t *testing.T) {
	forbidden := []string{
		"github.com/cockroachdb/pebble",
		"github.com/lesismal/nbio",
		"github.com/redis/",
		"github.com/nats-io/",
	}
	for _, pkg := range []string{"./internal/node", "./internal/protocol", "./internal/engine", "./client"} {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Dir = testkit.ModuleRoot(t)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 5 {
			t.Fatalf("go list -deps %s listed only %v", pkg, deps)
		}
		for _, dep := range deps {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
	// And the check can see a violation where one is allowed to exist.
	cmd := exec.Command("go", "list", "-deps", "./internal/engine/durable")
	cmd.Dir = testkit.ModuleRoot(t)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "github.com/cockroachdb/pebble") {
		t.Fatalf("go list -deps cannot see pebble under the durable engine: %v", err)
	}
}
