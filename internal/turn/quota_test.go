package turn

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/heraldrt/herald/internal/testkit"
)

func TestAllocationQuota(t *testing.T) {
	s := start(t, Config{AllowedPeers: loopback, MaxAllocationsPerUser: 1})
	alice := credentials(t, s, "alice")
	first := dial(t, s, alice.Username, alice.Credential, "udp", nil)
	relay, err := first.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	second := dial(t, s, alice.Username, alice.Credential, "udp", nil)
	if r, err := second.Allocate(); err == nil {
		_ = r.Close()
		t.Fatal("a second allocation for alice beyond the quota of 1")
	} else if !strings.Contains(err.Error(), "486") {
		t.Errorf("over quota: %v, want error 486 (Allocation Quota Reached)", err)
	}
	bob := credentials(t, s, "bob")
	if r, err := dial(t, s, bob.Username, bob.Credential, "udp", nil).Allocate(); err != nil {
		t.Fatalf("bob's allocation: %v", err)
	} else {
		defer r.Close()
	}
	// Alice's quota frees when her allocation closes.
	if err := relay.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "alice's allocation to close", func() bool { return s.Allocations() == 1 })
	third := dial(t, s, alice.Username, alice.Credential, "udp", nil)
	r, err := third.Allocate()
	if err != nil {
		t.Fatalf("alice after closing her allocation: %v", err)
	}
	_ = r.Close()
}

// TestAllocationQuotaConcurrent asks for many allocations of one user at
// once, each over its own TCP connection (pion serves each connection on
// its own goroutine, so the requests really race): no more than the quota
// may succeed, and every refusal is 486.
func TestAllocationQuotaConcurrent(t *testing.T) {
	const quota, clients, rounds = 3, 16, 8
	s := start(t, Config{AllowedPeers: loopback, MaxAllocationsPerUser: quota})
	for round := range rounds {
		user := fmt.Sprintf("user%d", round)
		cred := credentials(t, s, user)
		turnClients := make([]*pionturn.Client, clients)
		for i := range turnClients {
			turnClients[i] = dial(t, s, cred.Username, cred.Credential, "tcp", nil)
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			granted []net.PacketConn
			refused []error
		)
		start := make(chan struct{})
		for _, c := range turnClients {
			wg.Go(func() {
				<-start
				relay, err := c.Allocate()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					refused = append(refused, err)
					return
				}
				granted = append(granted, relay)
			})
		}
		close(start)
		wg.Wait()
		for _, r := range granted {
			t.Cleanup(func() { _ = r.Close() })
		}
		if len(granted) != quota {
			t.Fatalf("round %d: %d of %d simultaneous allocations granted, want the quota of %d", round, len(granted), clients, quota)
		}
		for _, err := range refused {
			if !strings.Contains(err.Error(), "486") {
				t.Errorf("round %d: refusal %v, want error 486 (Allocation Quota Reached)", round, err)
			}
		}
	}
	if n := s.Allocations(); n != quota*rounds {
		t.Errorf("%d allocations open, want %d", n, quota*rounds)
	}
}

// TestAdmitReserves: admit counts the slot it grants, so requests admitted
// together, before pion has made any of their allocations, cannot exceed
// the quota between them.
func TestAdmitReserves(t *testing.T) {
	const quota, requests = 4, 64
	a := newAllocations(quota)
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for range requests {
		wg.Go(func() {
			if a.admit("alice", "herald", nil) {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if admitted != quota {
		t.Fatalf("%d of %d simultaneous requests admitted, want the quota of %d", admitted, requests, quota)
	}
	if !a.admit("bob", "herald", nil) {
		t.Fatal("another user refused")
	}
}

// A reservation whose allocation fails is released: at once when the
// relay socket cannot be made, after reservationTTL when pion fails the
// allocation without telling.
func TestQuotaReservationReleased(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	a := newAllocations(1)
	a.now = func() time.Time { return now }

	// The relay port is taken: the slot comes back at once.
	taken := peer(t)
	relay := &limitedRelay{RelayAddressGeneratorStatic: &pionturn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"}, quota: a}
	if err := relay.Validate(); err != nil {
		t.Fatal(err)
	}
	if !a.admit("alice", "herald", nil) {
		t.Fatal("first admit refused")
	}
	busy := pionturn.AllocateListenerConfig{Network: "udp4", UserID: "alice", RequestedPort: taken.LocalAddr().(*net.UDPAddr).Port}
	if conn, _, err := relay.AllocatePacketConn(busy); err == nil {
		_ = conn.Close()
		t.Fatal("relay socket on a port in use")
	}
	if !a.admit("alice", "herald", nil) {
		t.Fatal("the slot of a failed relay socket was not released")
	}

	// This reservation is never followed by an allocation.
	if a.admit("alice", "herald", nil) {
		t.Fatal("admitted beyond the quota while a reservation is pending")
	}
	now = now.Add(reservationTTL)
	if !a.admit("alice", "herald", nil) {
		t.Fatal("a reservation that outlived reservationTTL still holds the slot")
	}

	// A made allocation holds its slot until deleted, and the map forgets
	// users holding nothing.
	a.created(nil, nil, "UDP", "alice", "herald", nil, 0)
	now = now.Add(2 * reservationTTL)
	if a.admit("alice", "herald", nil) {
		t.Fatal("admitted beyond the quota with an allocation open")
	}
	a.deleted(nil, nil, "UDP", "alice", "herald")
	if len(a.byUser) != 0 {
		t.Fatalf("users tracked after their last allocation closed: %v", a.byUser)
	}
}
