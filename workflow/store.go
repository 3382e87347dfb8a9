package workflow

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
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

// BoltStore is a Store in one bbolt file. bbolt writes copy-on-write and
// syncs the data before the meta page that points to it, so a commit
// survives a crash whole or not at all.
type BoltStore struct {
	db *bolt.DB
}

// StoreFile is the name of the store's file in its directory.
const StoreFile = "workflows.db"

// DamagedStoreError is returned when the store's file is not a whole
// store: cut short, overwritten or not a store at all. The file is left as
// it is.
type DamagedStoreError struct {
	Path string
	Err  error
}

func (e *DamagedStoreError) Error() string {
	return fmt.Sprintf("workflow store %s is damaged: %v; the agent does not start on it, "+
		"so that the workflows and approvals it holds are not lost silently: restore the file from a backup, "+
		"or move it away to start with an empty store (the workflows in it are then forgotten: "+
		"check by hand the instances they changed)", e.Path, e.Err)
}

func (e *DamagedStoreError) Unwrap() error { return e.Err }

// OpenBoltStore opens (creating if needed) the store in dir. A damaged
// file is refused with a *DamagedStoreError, never replaced.
func OpenBoltStore(dir string) (*BoltStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create workflow store directory %q: %w", dir, err)
	}
	path := filepath.Join(dir, StoreFile)
	switch _, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		if err := createBoltFile(dir, path); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("open workflow store %q: %w", path, err)
	}
	if err := checkBoltFile(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open workflow store %q: %w", path, err)
	}
	// Stores made before they were created whole may lack buckets.
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
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

var buckets = [][]byte{bucketWorkflows, bucketEvents, bucketLocks, bucketExecutions}

// createBoltFile makes a new, empty store under a temporary name and
// renames it into place, syncing the directory: a file at path is then
// always a whole store, and an empty or short one is damage, not a store
// that a crash interrupted while it was being created.
func createBoltFile(dir, path string) error {
	tmp := path + ".new"
	// A crash while creating left it; it never held anything.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove unfinished workflow store %q: %w", tmp, err)
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("create workflow store %q: %w", tmp, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("initialise workflow store %q: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("create workflow store %q: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	return nil
}

// checkBoltFile reads the whole store read-only: its meta pages, its size
// against what its last commit needs, every page reachable from it, and
// every record. bbolt checks only the meta pages when it opens a file, and
// maps the file into memory, so that a page past the end of a cut file
// would fault later; reading everything first, with faults turned into
// panics, finds the damage at start, where it can be refused.
// Damage is a *DamagedStoreError; other errors (the file is locked by
// another process, or not readable) are not.
func checkBoltFile(path string) (err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("open workflow store %q: %w", path, err)
	}
	if fi.Size() == 0 {
		return &DamagedStoreError{Path: path, Err: errors.New("the file is empty")}
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &DamagedStoreError{Path: path, Err: fmt.Errorf("reading it failed: %v", r)}
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("open workflow store %q: another process has it open: %w", path, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("open workflow store %q: %w", path, err)
	case err != nil:
		return &DamagedStoreError{Path: path, Err: err}
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if need := tx.Size(); need > fi.Size() {
			return fmt.Errorf("the file has %d bytes and its last commit needs %d: it was cut short", fi.Size(), need)
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return checkBucket(string(name), b)
		})
	})
	if err != nil {
		return &DamagedStoreError{Path: path, Err: err}
	}
	return nil
}

// checkBucket decodes every record of a top-level bucket.
func checkBucket(name string, b *bolt.Bucket) error {
	var decode func(k, v []byte) error
	switch name {
	case string(bucketWorkflows):
		decode = func(_, v []byte) error { return json.Unmarshal(v, new(Workflow)) }
	case string(bucketExecutions):
		decode = func(_, v []byte) error { return json.Unmarshal(v, new(Execution)) }
	case string(bucketLocks):
		decode = func(_, v []byte) error {
			if len(v) == 0 {
				return errors.New("empty lock")
			}
			return nil
		}
	case string(bucketEvents):
		decode = func(k, v []byte) error {
			if v != nil {
				return errors.New("an event outside any workflow's log")
			}
			return b.Bucket(k).ForEach(func(_, v []byte) error { return json.Unmarshal(v, new(Event)) })
		}
	default:
		return fmt.Errorf("unknown bucket %q", name)
	}
	return b.ForEach(func(k, v []byte) error {
		if err := decode(k, v); err != nil {
			return fmt.Errorf("bucket %s, key %q: %w", name, k, err)
		}
		return nil
	})
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
