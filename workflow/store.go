package workflow

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store keeps workflows durably. Every Update is atomic: the record, the
// new events and the instance locks change together or not at all.
type Store interface {
	// Create stores a new workflow and takes its instance locks. It returns
	// a *ConflictError when an instance belongs to another active workflow.
	Create(w Workflow) error
	// Get returns the workflow with its full event log.
	Get(id string) (Workflow, error)
	// List returns the workflows matching f, oldest first.
	List(f Filter) ([]Workflow, error)
	// Update reads the workflow, applies fn and writes the result with a
	// higher Version, appending the events fn added. Locks are released
	// when the workflow becomes terminal. An error from fn changes nothing.
	Update(id string, fn func(Workflow) (Workflow, error)) (Workflow, error)
	// Execution returns the record of an executor call by idempotency key.
	Execution(key string) (Execution, bool, error)
	// BeginExecution records the intent to call the executor with key.
	BeginExecution(key string, now time.Time) error
	// FinishExecution records the outcome of the call with key.
	FinishExecution(key string, now time.Time, execErr error) error
	// Close releases the store.
	Close() error
}

// Filter selects workflows in List. Zero fields match everything.
type Filter struct {
	States []State
	Engine string
	Model  string
	// Active keeps only workflows that are not terminal.
	Active bool
	// FinishedAfter keeps only active workflows and those that finished
	// after it.
	FinishedAfter time.Time
	// NoEvents leaves Events empty, for callers that need only the records.
	NoEvents bool
}

func (f Filter) match(w Workflow) bool {
	if len(f.States) > 0 && !slices.Contains(f.States, w.State) {
		return false
	}
	if f.Active && w.State.Terminal() {
		return false
	}
	if !f.FinishedAfter.IsZero() && w.State.Terminal() && !w.FinishedAt.After(f.FinishedAfter) {
		return false
	}
	return (f.Engine == "" || f.Engine == w.Change.Engine) && (f.Model == "" || f.Model == w.Change.Model)
}

// Execution is the durable record of one executor call.
type Execution struct {
	Key        string    `json:"key"`
	Attempts   int       `json:"attempts"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// Done reports whether the call finished, successfully or not.
func (e Execution) Done() bool { return !e.FinishedAt.IsZero() }

var (
	bucketWorkflows  = []byte("workflows")
	bucketEvents     = []byte("events")
	bucketLocks      = []byte("locks")
	bucketExecutions = []byte("executions")
)

// BoltStore is a Store in one bbolt file.
type BoltStore struct {
	db *bolt.DB
}

// OpenBoltStore opens (creating if needed) the store in dir.
func OpenBoltStore(dir string) (*BoltStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create workflow store directory %q: %w", dir, err)
	}
	path := filepath.Join(dir, "workflows.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open workflow store %q: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketWorkflows, bucketEvents, bucketLocks, bucketExecutions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise workflow store %q: %w", path, err)
	}
	return &BoltStore{db: db}, nil
}

// Close closes the bbolt file.
func (s *BoltStore) Close() error { return s.db.Close() }

// Create implements Store.
func (s *BoltStore) Create(w Workflow) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketWorkflows).Get([]byte(w.ID)) != nil {
			return fmt.Errorf("create workflow %s: %w: id exists", w.ID, ErrInvalidChange)
		}
		locks := tx.Bucket(bucketLocks)
		for _, inst := range w.Pool {
			if owner := locks.Get([]byte(inst)); owner != nil {
				return &ConflictError{Instance: inst, Workflow: string(owner)}
			}
		}
		if !w.State.Terminal() {
			for _, inst := range w.Pool {
				if err := locks.Put([]byte(inst), []byte(w.ID)); err != nil {
					return fmt.Errorf("lock instance %q: %w", inst, err)
				}
			}
		}
		return putWorkflow(tx, w, 0)
	})
}

func putWorkflow(tx *bolt.Tx, w Workflow, storedEvents int) error {
	events := w.Events
	w.Events = nil
	b, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("encode workflow %s: %w", w.ID, err)
	}
	if err := tx.Bucket(bucketWorkflows).Put([]byte(w.ID), b); err != nil {
		return fmt.Errorf("write workflow %s: %w", w.ID, err)
	}
	eb, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists([]byte(w.ID))
	if err != nil {
		return fmt.Errorf("open event log of %s: %w", w.ID, err)
	}
	for _, ev := range events[storedEvents:] {
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event of %s: %w", w.ID, err)
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], uint64(ev.Seq))
		if eb.Get(k[:]) != nil {
			return fmt.Errorf("append event %d of %s: sequence exists", ev.Seq, w.ID)
		}
		if err := eb.Put(k[:], b); err != nil {
			return fmt.Errorf("append event of %s: %w", w.ID, err)
		}
	}
	return nil
}

func getWorkflow(tx *bolt.Tx, id string) (Workflow, error) {
	w, err := getRecord(tx, id)
	if err != nil {
		return Workflow{}, err
	}
	return w, loadEvents(tx, &w)
}

// getRecord reads a workflow without its events.
func getRecord(tx *bolt.Tx, id string) (Workflow, error) {
	b := tx.Bucket(bucketWorkflows).Get([]byte(id))
	if b == nil {
		return Workflow{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	var w Workflow
	if err := json.Unmarshal(b, &w); err != nil {
		return Workflow{}, fmt.Errorf("decode workflow %s: %w", id, err)
	}
	return w, nil
}

func loadEvents(tx *bolt.Tx, w *Workflow) error {
	eb := tx.Bucket(bucketEvents).Bucket([]byte(w.ID))
	if eb == nil {
		return nil
	}
	return eb.ForEach(func(_, v []byte) error {
		var ev Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return fmt.Errorf("decode event of %s: %w", w.ID, err)
		}
		w.Events = append(w.Events, ev)
		return nil
	})
}

// Get implements Store.
func (s *BoltStore) Get(id string) (Workflow, error) {
	var w Workflow
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		w, err = getWorkflow(tx, id)
		return err
	})
	return w, err
}

// List implements Store.
func (s *BoltStore) List(f Filter) ([]Workflow, error) {
	var out []Workflow
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWorkflows).ForEach(func(k, _ []byte) error {
			w, err := getRecord(tx, string(k))
			if err != nil || !f.match(w) {
				return err
			}
			if !f.NoEvents {
				if err := loadEvents(tx, &w); err != nil {
					return err
				}
			}
			out = append(out, w)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	slices.SortStableFunc(out, func(a, b Workflow) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Update implements Store.
func (s *BoltStore) Update(id string, fn func(Workflow) (Workflow, error)) (Workflow, error) {
	var out Workflow
	err := s.db.Update(func(tx *bolt.Tx) error {
		old, err := getWorkflow(tx, id)
		if err != nil {
			return err
		}
		n, err := fn(old.clone())
		if err != nil {
			return err
		}
		if n.ID != old.ID || len(n.Events) < len(old.Events) {
			return fmt.Errorf("update workflow %s: id changed or events removed", id)
		}
		n.Version = old.Version + 1
		if n.State.Terminal() {
			locks := tx.Bucket(bucketLocks)
			for _, inst := range n.Pool {
				if string(locks.Get([]byte(inst))) == n.ID {
					if err := locks.Delete([]byte(inst)); err != nil {
						return fmt.Errorf("unlock instance %q: %w", inst, err)
					}
				}
			}
		}
		if err := putWorkflow(tx, n, len(old.Events)); err != nil {
			return err
		}
		out = n
		return nil
	})
	return out, err
}

// Execution implements Store.
func (s *BoltStore) Execution(key string) (Execution, bool, error) {
	var e Execution
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketExecutions).Get([]byte(key))
		if b == nil {
			return nil
		}
		found = true
		return json.Unmarshal(b, &e)
	})
	if err != nil {
		return Execution{}, false, fmt.Errorf("read execution %q: %w", key, err)
	}
	return e, found, nil
}

// BeginExecution implements Store.
func (s *BoltStore) BeginExecution(key string, now time.Time) error {
	return s.putExecution(key, func(e *Execution) error {
		if e.Done() {
			return fmt.Errorf("begin execution %q: already finished", key)
		}
		if e.Attempts == 0 {
			e.StartedAt = now
		}
		e.Attempts++
		return nil
	})
}

// FinishExecution implements Store.
func (s *BoltStore) FinishExecution(key string, now time.Time, execErr error) error {
	return s.putExecution(key, func(e *Execution) error {
		e.FinishedAt = now
		if execErr != nil {
			e.Error = execErr.Error()
		}
		return nil
	})
}

func (s *BoltStore) putExecution(key string, fn func(*Execution) error) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketExecutions)
		e := Execution{Key: key}
		if b := bk.Get([]byte(key)); b != nil {
			if err := json.Unmarshal(b, &e); err != nil {
				return err
			}
		}
		if err := fn(&e); err != nil {
			return err
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), b)
	})
	if err != nil {
		return fmt.Errorf("record execution %q: %w", key, err)
	}
	return nil
}
