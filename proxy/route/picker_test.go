package route

import (
	"sync"
	"testing"
)

func pickCounts(p *picker, n, requests int, available func(int) bool) []int {
	c := make([]int, n)
	for range requests {
		if i := p.Pick(available); i >= 0 {
			c[i]++
		}
	}
	return c
}

func TestPickerShares(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		want    []int // per 10,000 requests
	}{
		{"90/10", []int{90, 10}, []int{9000, 1000}},
		{"equal", []int{1, 1, 1, 1}, []int{2500, 2500, 2500, 2500}},
		{"zero weight", []int{3, 0, 1}, []int{7500, 0, 2500}},
		{"large weights", []int{999_999, 1, 1_000_000}, []int{5000, 1, 4999}},
		{"one", []int{7}, []int{10000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := pickCounts(newPicker(tc.weights), len(tc.weights), 10000, nil)
			for i := range got {
				if d := got[i] - tc.want[i]; d < -2 || d > 2 {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestPickerSmooth(t *testing.T) {
	p := newPicker([]int{5, 1, 1})
	var seq []int
	for range 7 {
		seq = append(seq, p.Pick(nil))
	}
	if want := []int{0, 0, 1, 0, 2, 0, 0}; !equal(seq, want) {
		t.Errorf("got %v, want nginx's smooth order %v", seq, want)
	}
}

func TestPickerSkipsUnavailable(t *testing.T) {
	p := newPicker([]int{50, 30, 20})
	down := func(i int) bool { return i != 1 }
	got := pickCounts(p, 3, 10000, down)
	// Backend 1's share goes to the others in proportion: 5/7 and 2/7.
	if got[1] != 0 || abs(got[0]-7143) > 150 || abs(got[2]-2857) > 150 {
		t.Errorf("got %v, want about [7143 0 2857]", got)
	}
	if i := p.Pick(func(int) bool { return false }); i != -1 {
		t.Errorf("none available: got %d, want -1", i)
	}
	if i := newPicker([]int{0, 0}).Pick(nil); i != -1 {
		t.Errorf("all weights 0: got %d, want -1", i)
	}
	if i := newPicker(nil).Pick(nil); i != -1 {
		t.Errorf("no backends: got %d, want -1", i)
	}
}

func TestPickerConcurrent(t *testing.T) {
	p := newPicker([]int{90, 10})
	var mu sync.Mutex
	total := make([]int, 2)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := pickCounts(p, 2, 1250, nil)
			mu.Lock()
			total[0] += c[0]
			total[1] += c[1]
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total[0] != 9000 || total[1] != 1000 {
		t.Errorf("got %v from 8 goroutines, want exactly [9000 1000]", total)
	}
}

func BenchmarkSplitPick(b *testing.B) {
	p := newPicker([]int{90, 10})
	b.ReportAllocs()
	for b.Loop() {
		p.Pick(nil)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
