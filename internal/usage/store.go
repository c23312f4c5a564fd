package usage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The usage file: bucket "hours" holds one bucket per UTC hour (named by its start in
// RFC 3339, so names sort by time); bucket "totals" holds every workload's usage since the
// file began. Inside both, a key is namespace/kind/name/revision and a value is 24 bytes:
// invocations (uint64), instance-seconds and GB-seconds (float64 bits), big-endian.
var (
	bucketHours  = []byte("hours")
	bucketTotals = []byte("totals")
)

const hourLayout = "2006-01-02T15:04:05Z"

func hourName(h time.Time) []byte { return []byte(h.UTC().Format(hourLayout)) }

// Workload names what usage belongs to: a function, or a revision of a service.
type Workload struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"` // function or service
	Name      string `json:"name"`
	Revision  string `json:"revision,omitempty"`
}

func (w Workload) key() []byte {
	return []byte(w.Namespace + "/" + w.Kind + "/" + w.Name + "/" + w.Revision)
}

func parseKey(k []byte) (Workload, bool) {
	p := strings.SplitN(string(k), "/", 4)
	if len(p) != 4 {
		return Workload{}, false
	}
	return Workload{Namespace: p[0], Kind: p[1], Name: p[2], Revision: p[3]}, true
}

func encodeCounters(c Counters) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b[0:], c.Invocations)
	binary.BigEndian.PutUint64(b[8:], math.Float64bits(c.InstanceSeconds))
	binary.BigEndian.PutUint64(b[16:], math.Float64bits(c.GBSeconds))
	return b
}

func decodeCounters(b []byte) (Counters, error) {
	if len(b) != 24 {
		return Counters{}, fmt.Errorf("usage record of %d bytes, want 24", len(b))
	}
	return Counters{
		Invocations:     binary.BigEndian.Uint64(b[0:]),
		InstanceSeconds: math.Float64frombits(binary.BigEndian.Uint64(b[8:])),
		GBSeconds:       math.Float64frombits(binary.BigEndian.Uint64(b[16:])),
	}, nil
}

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open usage file %s: another flick server is using this data dir", path)
		}
		return nil, fmt.Errorf("open usage file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketHours, bucketTotals} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open usage file %s: %w", path, err)
	}
	return db, nil
}

// addTo adds each workload's counters to the values in bucket b.
func addTo(b *bolt.Bucket, add map[Workload]Counters) error {
	for w, c := range add {
		k := w.key()
		old := Counters{}
		if v := b.Get(k); v != nil {
			var err error
			if old, err = decodeCounters(v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		if err := b.Put(k, encodeCounters(old.Add(c))); err != nil {
			return err
		}
	}
	return nil
}

// write adds pending usage (by hour) to its hour buckets and to the totals, in one transaction.
func write(db *bolt.DB, pending map[time.Time]map[Workload]Counters) error {
	return db.Update(func(tx *bolt.Tx) error {
		hours, totals := tx.Bucket(bucketHours), tx.Bucket(bucketTotals)
		for h, add := range pending {
			b, err := hours.CreateBucketIfNotExists(hourName(h))
			if err != nil {
				return err
			}
			if err := addTo(b, add); err != nil {
				return err
			}
			if err := addTo(totals, add); err != nil {
				return err
			}
		}
		return nil
	})
}

// readEach calls fn with every record of bucket b.
func readEach(b *bolt.Bucket, fn func(Workload, Counters)) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			return nil // a nested bucket
		}
		w, ok := parseKey(k)
		if !ok {
			return fmt.Errorf("usage key %q is not namespace/kind/name/revision", k)
		}
		c, err := decodeCounters(v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		fn(w, c)
		return nil
	})
}

// readTotals returns every workload's stored totals.
func readTotals(db *bolt.DB) (map[Workload]Counters, error) {
	out := map[Workload]Counters{}
	err := db.View(func(tx *bolt.Tx) error {
		return readEach(tx.Bucket(bucketTotals), func(w Workload, c Counters) { out[w] = out[w].Add(c) })
	})
	return out, err
}

// readSince calls fn with the stored usage of every hour that starts at or after from.
func readSince(db *bolt.DB, from time.Time, fn func(Workload, Counters)) error {
	return db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHours).Cursor()
		for k, v := c.Seek(hourName(from)); k != nil; k, v = c.Next() {
			if v != nil {
				continue
			}
			if err := readEach(tx.Bucket(bucketHours).Bucket(k), fn); err != nil {
				return fmt.Errorf("hour %s: %w", k, err)
			}
		}
		return nil
	})
}
