// Package store keeps Flick's resources durably in one bbolt file in the data dir and tells
// watchers about every change. It knows resources only as generic envelopes (apis.Resource):
// validation and defaults happen before an object reaches it. It must never import the engine.
package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/flickdev/flick/pkg/apis"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("resource version conflict")
)

// Watch event types, as in Kubernetes.
const (
	Added    = "ADDED"
	Modified = "MODIFIED"
	Deleted  = "DELETED"
)

// Event is one change to one object.
type Event struct {
	Type   string         `json:"type"`
	Object *apis.Resource `json:"object"`
}

var (
	bucketObjects = []byte("objects")
	bucketMeta    = []byte("meta")
	keyRevision   = []byte("revision")
)

// Store is the embedded durable store. Safe for concurrent use.
type Store struct {
	db  *bolt.DB
	now func() time.Time

	mu       sync.Mutex
	watchers map[*watcher]struct{}
}

type watcher struct {
	plural, namespace string
	ch                chan Event
}

// Open opens (or creates) the store file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: another flick server is using this data dir", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketObjects, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init store %s: %w", path, err)
	}
	return &Store{db: db, now: time.Now, watchers: map[*watcher]struct{}{}}, nil
}

// Close closes the file and ends every watch.
func (s *Store) Close() error {
	s.mu.Lock()
	for w := range s.watchers {
		close(w.ch)
		delete(s.watchers, w)
	}
	s.mu.Unlock()
	return s.db.Close()
}

func objectKey(plural, namespace, name string) []byte {
	return []byte(plural + "/" + namespace + "/" + name)
}

func prefix(plural, namespace string) []byte {
	if namespace == "" {
		return []byte(plural + "/")
	}
	return []byte(plural + "/" + namespace + "/")
}

// Get returns one object.
func (s *Store) Get(plural, namespace, name string) (*apis.Resource, error) {
	var r *apis.Resource
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketObjects).Get(objectKey(plural, namespace, name))
		if v == nil {
			return ErrNotFound
		}
		r = new(apis.Resource)
		return json.Unmarshal(v, r)
	})
	if err != nil {
		return nil, fmt.Errorf("get %s %s/%s: %w", plural, namespace, name, err)
	}
	return r, nil
}

// List returns every object of a kind in a namespace ("" for all), ordered by key.
func (s *Store) List(plural, namespace string) ([]*apis.Resource, error) {
	var out []*apis.Resource
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = list(tx, plural, namespace)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", plural, err)
	}
	return out, nil
}

func list(tx *bolt.Tx, plural, namespace string) ([]*apis.Resource, error) {
	var out []*apis.Resource
	p := prefix(plural, namespace)
	c := tx.Bucket(bucketObjects).Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		r := new(apis.Resource)
		if err := json.Unmarshal(v, r); err != nil {
			return nil, fmt.Errorf("decode %s: %w", k, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Create stores a new object, stamping its uid, generation, creation time and version.
func (s *Store) Create(plural string, r *apis.Resource) (*apis.Resource, error) {
	obj := *r
	m := &obj.Metadata
	err := s.update(func(tx *bolt.Tx, rev uint64) (*Event, error) {
		b := tx.Bucket(bucketObjects)
		key := objectKey(plural, m.Namespace, m.Name)
		if b.Get(key) != nil {
			return nil, ErrExists
		}
		now := s.now().UTC().Truncate(time.Second)
		m.UID = newUID()
		m.Generation = 1
		m.CreationTimestamp = &now
		m.ResourceVersion = strconv.FormatUint(rev, 10)
		return &Event{Type: Added, Object: &obj}, put(b, key, &obj)
	}, plural)
	if err != nil {
		return nil, fmt.Errorf("create %s %s/%s: %w", plural, m.Namespace, m.Name, err)
	}
	return &obj, nil
}

// Update replaces an object's metadata and spec, keeping its status. The generation goes up
// when the spec changes. A non-empty ResourceVersion must match the stored one.
func (s *Store) Update(plural string, r *apis.Resource) (*apis.Resource, error) {
	obj := *r
	m := &obj.Metadata
	err := s.update(func(tx *bolt.Tx, rev uint64) (*Event, error) {
		b := tx.Bucket(bucketObjects)
		key := objectKey(plural, m.Namespace, m.Name)
		old, err := get(b, key)
		if err != nil {
			return nil, err
		}
		if m.ResourceVersion != "" && m.ResourceVersion != old.Metadata.ResourceVersion {
			return nil, ErrConflict
		}
		m.UID = old.Metadata.UID
		m.CreationTimestamp = old.Metadata.CreationTimestamp
		m.Generation = old.Metadata.Generation
		if !jsonEqual(old.Spec, obj.Spec) {
			m.Generation++
		}
		obj.Status = old.Status
		m.ResourceVersion = strconv.FormatUint(rev, 10)
		return &Event{Type: Modified, Object: &obj}, put(b, key, &obj)
	}, plural)
	if err != nil {
		return nil, fmt.Errorf("update %s %s/%s: %w", plural, m.Namespace, m.Name, err)
	}
	return &obj, nil
}

// UpdateStatus replaces an object's status and nothing else. It is not an error when the
// object is gone (it was deleted while its status was being computed): that returns ErrNotFound.
func (s *Store) UpdateStatus(plural, namespace, name string, status json.RawMessage) (*apis.Resource, error) {
	var obj *apis.Resource
	err := s.update(func(tx *bolt.Tx, rev uint64) (*Event, error) {
		b := tx.Bucket(bucketObjects)
		key := objectKey(plural, namespace, name)
		var err error
		obj, err = get(b, key)
		if err != nil {
			return nil, err
		}
		if jsonEqual(obj.Status, status) {
			return nil, nil
		}
		obj.Status = status
		obj.Metadata.ResourceVersion = strconv.FormatUint(rev, 10)
		return &Event{Type: Modified, Object: obj}, put(b, key, obj)
	}, plural)
	if err != nil {
		return nil, fmt.Errorf("update status of %s %s/%s: %w", plural, namespace, name, err)
	}
	return obj, nil
}

// Delete removes an object and returns what it was.
func (s *Store) Delete(plural, namespace, name string) (*apis.Resource, error) {
	var obj *apis.Resource
	err := s.update(func(tx *bolt.Tx, rev uint64) (*Event, error) {
		b := tx.Bucket(bucketObjects)
		key := objectKey(plural, namespace, name)
		var err error
		obj, err = get(b, key)
		if err != nil {
			return nil, err
		}
		obj.Metadata.ResourceVersion = strconv.FormatUint(rev, 10)
		return &Event{Type: Deleted, Object: obj}, b.Delete(key)
	}, plural)
	if err != nil {
		return nil, fmt.Errorf("delete %s %s/%s: %w", plural, namespace, name, err)
	}
	return obj, nil
}

// update runs fn in a write transaction with the next resource version and, once the
// transaction is durable, tells the watchers about the event fn returned (if any).
func (s *Store) update(fn func(tx *bolt.Tx, rev uint64) (*Event, error), plural string) error {
	// Writers are serialized by bbolt anyway; holding mu across commit and notify also keeps
	// every watcher's events in commit order.
	s.mu.Lock()
	defer s.mu.Unlock()
	var ev *Event
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var rev uint64 = 1
		if v := meta.Get(keyRevision); len(v) == 8 {
			rev = binary.BigEndian.Uint64(v) + 1
		}
		var err error
		ev, err = fn(tx, rev)
		if err != nil || ev == nil {
			return err
		}
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], rev)
		return meta.Put(keyRevision, buf[:])
	})
	if err != nil || ev == nil {
		return err
	}
	s.notifyLocked(plural, *ev)
	return nil
}

func get(b *bolt.Bucket, key []byte) (*apis.Resource, error) {
	v := b.Get(key)
	if v == nil {
		return nil, ErrNotFound
	}
	r := new(apis.Resource)
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return r, nil
}

func put(b *bolt.Bucket, key []byte, r *apis.Resource) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(key, v)
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// watchBuffer is how far a watcher may fall behind before it is dropped; a dropped watcher's
// channel closes and its owner lists and watches again.
const watchBuffer = 1024

// Watch returns the current objects of a kind in a namespace ("" for all) as ADDED events,
// followed by every later change, until ctx ends or the watcher falls too far behind (then the
// channel closes). Listing and subscribing happen atomically, so no change is missed.
func (s *Store) Watch(ctx context.Context, plural, namespace string) (<-chan Event, error) {
	w := &watcher{plural: plural, namespace: namespace}
	s.mu.Lock()
	var current []*apis.Resource
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		current, err = list(tx, plural, namespace)
		return err
	})
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("watch %s: %w", plural, err)
	}
	w.ch = make(chan Event, len(current)+watchBuffer)
	for _, r := range current {
		w.ch <- Event{Type: Added, Object: r}
	}
	s.watchers[w] = struct{}{}
	s.mu.Unlock()

	go func() {
		<-ctx.Done()
		s.mu.Lock()
		if _, ok := s.watchers[w]; ok {
			delete(s.watchers, w)
			close(w.ch)
		}
		s.mu.Unlock()
	}()
	return w.ch, nil
}

// notifyLocked is called with mu held after a write transaction commits. Watch takes its
// initial list under mu too, so a watcher sees each change exactly once.
func (s *Store) notifyLocked(plural string, ev Event) {
	for w := range s.watchers {
		if w.plural != plural || (w.namespace != "" && w.namespace != ev.Object.Metadata.Namespace) {
			continue
		}
		select {
		case w.ch <- ev:
		default:
			delete(s.watchers, w)
			close(w.ch)
		}
	}
}

func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
