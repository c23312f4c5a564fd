package ping

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The state file: bucket "fired" maps namespace/name to the last tick the sink accepted, in
// RFC 3339 (readable with any bbolt tool). A commit is fsynced, so a recorded tick survives a
// crash.
var bucketFired = []byte("fired")

const stateFile = "ping.db"

type state struct {
	db *bolt.DB
}

func openState(dir string) (*state, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ping state: %w", err)
	}
	path := filepath.Join(dir, stateFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open ping state %s: another flick server is using it", path)
		}
		return nil, fmt.Errorf("open ping state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketFired)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open ping state %s: %w", path, err)
	}
	return &state{db: db}, nil
}

// LastFired returns the last tick recorded for key, zero if none.
func (s *state) LastFired(key string) (time.Time, error) {
	var tick time.Time
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFired).Get([]byte(key))
		if v == nil {
			return nil
		}
		return tick.UnmarshalText(v)
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("read ping state of %s: %w", key, err)
	}
	return tick, nil
}

// Record durably notes tick as fired for key. Batch folds the records of the many sources
// that fire on the same minute into one commit, so into one fsync.
func (s *state) Record(key string, tick time.Time) error {
	v, err := tick.UTC().MarshalText()
	if err != nil {
		return fmt.Errorf("record tick of %s: %w", key, err)
	}
	err = s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFired).Put([]byte(key), v)
	})
	if err != nil {
		return fmt.Errorf("record tick of %s: %w", key, err)
	}
	return nil
}

func (s *state) Forget(key string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFired).Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("forget ping state of %s: %w", key, err)
	}
	return nil
}

func (s *state) Close() error { return s.db.Close() }
