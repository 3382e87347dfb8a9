package once

import "sync"

// Map holds the values computed so far, by key. The zero Map is empty and
// ready to use; it must not be copied after first use.
type Map[K comparable, V any] struct {
	mtx     sync.Mutex
	entries map[K]*entry[V]
}

// entry is one key's value; mtx keeps a second caller waiting for the
// first to compute it.
type entry[V any] struct {
	mtx  sync.Mutex
	done bool
	v    V
}

// Get returns the value of key, computing it with compute if no caller
// has. A computation that fails is not kept: the next caller computes
// again.
func (m *Map[K, V]) Get(key K, compute func() (V, error)) (V, error) {
	m.mtx.Lock()
	e := m.entries[key]
	if e == nil {
		if m.entries == nil {
			m.entries = map[K]*entry[V]{}
		}
		e = &entry[V]{}
		m.entries[key] = e
	}
	m.mtx.Unlock()

	e.mtx.Lock()
	defer e.mtx.Unlock()
	if e.done {
		return e.v, nil
	}
	v, err := compute()
	if err != nil {
		var zero V
		return zero, err
	}
	e.v, e.done = v, true
	return v, nil
}

// Len is how many keys have been asked for.
func (m *Map[K, V]) Len() int {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	return len(m.entries)
}
