package route

import (
	"testing"
	"unsafe"
)

// TestHotObjectsOwnTheirCacheLines: every object the request path writes is
// a whole number of cache lines (see cacheLine), so that it shares none
// with an object requests only read.
func TestHotObjectsOwnTheirCacheLines(t *testing.T) {
	for name, size := range map[string]uintptr{
		"RouteStats":    unsafe.Sizeof(RouteStats{}),
		"ServiceStats":  unsafe.Sizeof(ServiceStats{}),
		"InstanceStats": unsafe.Sizeof(InstanceStats{}),
		"retryBudget":   unsafe.Sizeof(retryBudget{}),
		"paddedCounter": unsafe.Sizeof(paddedCounter{}),
	} {
		if size%cacheLine != 0 {
			t.Errorf("%s is %d bytes, not a multiple of %d", name, size, cacheLine)
		}
	}
}
