package cache

import (
	"container/list"
	"slices"
	"strings"
	"sync"
)

// memory is the local tier: objects by key and variant, bounded by the
// sum of their sizes, evicting the least recently used. Safe for
// concurrent use.
type memory struct {
	mu        sync.Mutex
	maxBytes  int64
	size      int64
	lru       list.List                      // of *memEntry, most recent first
	resources map[string]*resource           // by primary key
	byURL     map[string]map[string]struct{} // url → primaries, for invalidation
	evictions uint64
}

// resource is one primary key's Vary and its stored variants.
type resource struct {
	url      string
	vary     []string
	variants map[string]*list.Element
}

type memEntry struct {
	primary string
	obj     *object
}

func newMemory(maxBytes int64) *memory {
	return &memory{maxBytes: maxBytes, resources: make(map[string]*resource),
		byURL: make(map[string]map[string]struct{})}
}

// vary returns the selecting fields of a stored resource.
func (m *memory) vary(primary string) ([]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res, ok := m.resources[primary]
	if !ok {
		return nil, false
	}
	return res.vary, true
}

// get returns a stored variant and marks it used.
func (m *memory) get(primary, variant string) *object {
	m.mu.Lock()
	defer m.mu.Unlock()
	res, ok := m.resources[primary]
	if !ok {
		return nil
	}
	el, ok := res.variants[variant]
	if !ok {
		return nil
	}
	m.lru.MoveToFront(el)
	return el.Value.(*memEntry).obj
}

// put stores o for k, replacing the variant it selects; a Vary different
// from the stored one replaces every variant (§4.1: the newest response
// says what selects). It returns how many objects it evicted.
func (m *memory) put(k key, o *object) int {
	if o.size() > m.maxBytes {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	primary := k.primary()
	res, ok := m.resources[primary]
	if ok && !slices.Equal(res.vary, o.vary) {
		m.dropResource(primary)
		ok = false
	}
	if !ok {
		res = &resource{url: k.url, vary: o.vary, variants: make(map[string]*list.Element)}
		m.resources[primary] = res
		if m.byURL[k.url] == nil {
			m.byURL[k.url] = make(map[string]struct{})
		}
		m.byURL[k.url][primary] = struct{}{}
	}
	if el, ok := res.variants[o.varyKey]; ok {
		m.size -= el.Value.(*memEntry).obj.size()
		m.lru.Remove(el)
	}
	res.variants[o.varyKey] = m.lru.PushFront(&memEntry{primary: primary, obj: o})
	m.size += o.size()
	evicted := 0
	for m.size > m.maxBytes {
		el := m.lru.Back()
		m.removeEntry(el)
		evicted++
	}
	m.evictions += uint64(evicted)
	return evicted
}

// removeEntry removes one variant, and its resource when it was the last.
func (m *memory) removeEntry(el *list.Element) {
	e := el.Value.(*memEntry)
	m.lru.Remove(el)
	m.size -= e.obj.size()
	res := m.resources[e.primary]
	delete(res.variants, e.obj.varyKey)
	if len(res.variants) == 0 {
		m.forget(e.primary, res.url)
	}
}

func (m *memory) forget(primary, url string) {
	delete(m.resources, primary)
	if set := m.byURL[url]; set != nil {
		delete(set, primary)
		if len(set) == 0 {
			delete(m.byURL, url)
		}
	}
}

// dropResource removes a primary key and every variant of it.
func (m *memory) dropResource(primary string) int {
	res, ok := m.resources[primary]
	if !ok {
		return 0
	}
	n := len(res.variants)
	for _, el := range res.variants {
		m.size -= el.Value.(*memEntry).obj.size()
		m.lru.Remove(el)
	}
	m.forget(primary, res.url)
	return n
}

// invalidate removes every object stored for url (any route, any keyed
// field, any variant), or for every url starting with it when prefix.
// It returns the number of objects removed.
func (m *memory) invalidate(url string, prefix bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for u, set := range m.byURL {
		if u != url && !(prefix && strings.HasPrefix(u, url)) {
			continue
		}
		for primary := range set {
			n += m.dropResource(primary)
		}
	}
	return n
}

// usage reports the stored bytes and objects.
func (m *memory) usage() (bytes int64, objects int, evictions uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size, m.lru.Len(), m.evictions
}
