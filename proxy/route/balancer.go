package route

import (
	"math/rand/v2"
	"sync/atomic"
)

// balancer picks the instance for one attempt. It skips instances whose state
// is not Available and avoids the one the previous attempt failed on (avoid,
// nil on a first attempt) unless it is the only available one. It returns nil
// when no instance is available. Implementations allocate nothing and are
// safe for concurrent use; ups is the slice the balancer was built for.
type balancer interface {
	Pick(ups []*Upstream, avoid *Upstream) *Upstream
}

// Balance policy names, as in ServiceSpec.Balance.
const (
	balanceRoundRobin   = "round_robin"
	balanceRandom       = "random"
	balanceWeighted     = "weighted"
	balanceLeastRequest = "least_request"
)

// NewBalancer returns the policy's balancer for ups. next is the service's
// long-lived round-robin counter, so that rebuilding the table (which happens
// on every discovery change) does not restart the rotation at the first
// instance. ok is false for an unknown policy (round robin is returned).
func NewBalancer(policy string, ups []*Upstream, next *atomic.Uint64) (b balancer, ok bool) {
	switch policy {
	case balanceRoundRobin, "":
		return RoundRobin{next: next}, true
	case balanceRandom:
		return random{}, true
	case balanceWeighted:
		return newWeighted(ups), true
	case balanceLeastRequest:
		return leastRequest{}, true
	}
	return RoundRobin{next: next}, false
}

// scanFrom returns the first eligible instance at or after start (wrapping),
// else avoid if it is available, else nil. It is every policy's fallback.
func scanFrom(ups []*Upstream, start int, avoid *Upstream) *Upstream {
	n := len(ups)
	for i := 0; i < n; i++ {
		if u := ups[(start+i)%n]; u.eligible(avoid) {
			return u
		}
	}
	return lastResort(avoid)
}

// lastResort is the instance that failed the previous attempt, when nothing
// else is available but it still is.
func lastResort(avoid *Upstream) *Upstream {
	if avoid != nil && avoid.Health.Available() {
		return avoid
	}
	return nil
}

// newRoundRobinCounter returns a round-robin counter on a cache line of its
// own (see cacheLine): every request writes it.
func newRoundRobinCounter() *atomic.Uint64 { return &new(paddedCounter).Uint64 }

type paddedCounter struct {
	atomic.Uint64
	_ [cacheLine - 8]byte
}

// RoundRobin takes instances in turn from a shared atomic counter.
type RoundRobin struct{ next *atomic.Uint64 }

func (b RoundRobin) Pick(ups []*Upstream, avoid *Upstream) *Upstream {
	n := len(ups)
	if n == 0 {
		return nil
	}
	start := int((b.next.Add(1) - 1) % uint64(n))
	return scanFrom(ups, start, avoid)
}

// random picks uniformly, probing onwards from the draw when it is not
// eligible.
type random struct{}

func (random) Pick(ups []*Upstream, avoid *Upstream) *Upstream {
	n := len(ups)
	if n == 0 {
		return nil
	}
	return scanFrom(ups, rand.IntN(n), avoid)
}

// weighted picks with probability proportional to Consul's passing weight.
// cum holds the cumulative weights (cum[i] = w0+…+wi), computed once per
// table, so a pick is one draw and a binary search.
type weighted struct{ cum []int64 }

func newWeighted(ups []*Upstream) weighted {
	cum := make([]int64, len(ups))
	var total int64
	for i, u := range ups {
		total += int64(max(u.instance.Weight, 1)) // Consul's weights are ≥ 1; never let one vanish
		cum[i] = total
	}
	return weighted{cum: cum}
}

func (b weighted) Pick(ups []*Upstream, avoid *Upstream) *Upstream {
	n := len(ups)
	if n == 0 || n != len(b.cum) {
		return nil
	}
	r := rand.Int64N(b.cum[n-1])
	lo, hi := 0, n-1 // the first i with cum[i] > r
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if b.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if u := ups[lo]; u.eligible(avoid) {
		return u
	}
	// Draw again among the eligible only. Given the first draw missed, this
	// keeps every eligible instance's share exactly proportional to its
	// weight among the eligible ones.
	var total int64
	for i, u := range ups {
		if u.eligible(avoid) {
			total += b.weight(i)
		}
	}
	if total == 0 {
		return lastResort(avoid)
	}
	r = rand.Int64N(total)
	for i, u := range ups {
		if !u.eligible(avoid) {
			continue
		}
		if r -= b.weight(i); r < 0 {
			return u
		}
	}
	return lastResort(avoid) // unreachable unless availability changed mid-scan
}

func (b weighted) weight(i int) int64 {
	if i == 0 {
		return b.cum[0]
	}
	return b.cum[i] - b.cum[i-1]
}

// leastRequest is power of two choices: of two distinct random instances,
// the one with fewer requests in flight. It tracks load as well as a full
// scan would without every request herding onto the same idle instance.
type leastRequest struct{}

func (leastRequest) Pick(ups []*Upstream, avoid *Upstream) *Upstream {
	n := len(ups)
	switch n {
	case 0:
		return nil
	case 1:
		return scanFrom(ups, 0, avoid)
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := ups[i], ups[j]
	okA, okB := a.eligible(avoid), b.eligible(avoid)
	switch {
	case okA && okB:
		if b.Health.InFlight() < a.Health.InFlight() {
			return b
		}
		return a
	case okA:
		return a
	case okB:
		return b
	}
	// Both draws ineligible: the least loaded eligible instance, scanning
	// from a random start so that ties do not always go to the first.
	var best *Upstream
	var bestLoad int64
	for k := 0; k < n; k++ {
		u := ups[(i+k)%n]
		if !u.eligible(avoid) {
			continue
		}
		if l := u.Health.InFlight(); best == nil || l < bestLoad {
			best, bestLoad = u, l
		}
	}
	if best != nil {
		return best
	}
	return lastResort(avoid)
}

// Policies are the balance policies a service may name.
var Policies = []string{balanceRoundRobin, balanceRandom, balanceWeighted, balanceLeastRequest}
