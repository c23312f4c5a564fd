package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flickdev/flick/internal/store"
	"github.com/flickdev/flick/pkg/apis"
)

const fns = "functions"

func open(t *testing.T, path string) *store.Store {
	t.Helper()
	s, err := store.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s := open(t, filepath.Join(t.TempDir(), "flick.db"))
	t.Cleanup(func() { s.Close() })
	return s
}

func res(ns, name, spec string) *apis.Resource {
	return &apis.Resource{
		TypeMeta: apis.TypeMeta{APIVersion: "flick.dev/v1", Kind: "Function"},
		Metadata: apis.ObjectMeta{Name: name, Namespace: ns},
		Spec:     json.RawMessage(spec),
	}
}

func mustCreate(t *testing.T, s *store.Store, plural string, r *apis.Resource) *apis.Resource {
	t.Helper()
	out, err := s.Create(plural, r)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return out
}

func rv(t *testing.T, r *apis.Resource) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(r.Metadata.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", r.Metadata.ResourceVersion, err)
	}
	return n
}

func keys(rs []*apis.Resource) string {
	var ks []string
	for _, r := range rs {
		ks = append(ks, r.Key())
	}
	return strings.Join(ks, ",")
}

func TestCreateGet(t *testing.T) {
	s := newStore(t)
	in := res("default", "hello", `{"runtime":"go"}`)
	in.Metadata.UID = "spoofed"
	in.Metadata.Generation = 7
	before := time.Now().Add(-time.Second)
	created := mustCreate(t, s, fns, in)

	m := created.Metadata
	if m.UID == "" || m.UID == "spoofed" || len(m.UID) != 36 {
		t.Errorf("uid = %q, want a fresh UUID", m.UID)
	}
	if m.Generation != 1 {
		t.Errorf("generation = %d, want 1", m.Generation)
	}
	if m.CreationTimestamp == nil || m.CreationTimestamp.Before(before) {
		t.Errorf("creationTimestamp = %v, want about now", m.CreationTimestamp)
	}
	if rv(t, created) == 0 {
		t.Errorf("resourceVersion = %q", m.ResourceVersion)
	}
	if in.Metadata.UID != "spoofed" {
		t.Errorf("Create changed its argument")
	}

	got, err := s.Get(fns, "default", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if got.Metadata.UID != m.UID || got.Metadata.ResourceVersion != m.ResourceVersion || string(got.Spec) != `{"runtime":"go"}` {
		t.Errorf("Get = %+v %s, want what Create returned", got.Metadata, got.Spec)
	}

	// A second object gets a distinct uid and a later version.
	other := mustCreate(t, s, fns, res("default", "other", `{}`))
	if other.Metadata.UID == m.UID || rv(t, other) <= rv(t, created) {
		t.Errorf("second object: uid %s rv %s; first: uid %s rv %s", other.Metadata.UID, other.Metadata.ResourceVersion, m.UID, m.ResourceVersion)
	}
}

func TestErrors(t *testing.T) {
	s := newStore(t)
	mustCreate(t, s, fns, res("default", "hello", `{}`))
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"create twice", func() error { _, err := s.Create(fns, res("default", "hello", `{}`)); return err }, store.ErrExists},
		{"get missing", func() error { _, err := s.Get(fns, "default", "nope"); return err }, store.ErrNotFound},
		{"get other namespace", func() error { _, err := s.Get(fns, "prod", "hello"); return err }, store.ErrNotFound},
		{"get other kind", func() error { _, err := s.Get("services", "default", "hello"); return err }, store.ErrNotFound},
		{"update missing", func() error { _, err := s.Update(fns, res("default", "nope", `{}`)); return err }, store.ErrNotFound},
		{"update status of missing", func() error {
			_, err := s.UpdateStatus(fns, "default", "nope", json.RawMessage(`{}`))
			return err
		}, store.ErrNotFound},
		{"delete missing", func() error { _, err := s.Delete(fns, "default", "nope"); return err }, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
	// The same name is fine in another namespace or kind.
	mustCreate(t, s, fns, res("prod", "hello", `{}`))
	mustCreate(t, s, "services", res("default", "hello", `{}`))
}

func TestList(t *testing.T) {
	s := newStore(t)
	for _, k := range []string{"prod/b", "default/z", "prod/a", "default/a", "dev/m"} {
		ns, name, _ := strings.Cut(k, "/")
		mustCreate(t, s, fns, res(ns, name, `{}`))
	}
	mustCreate(t, s, "services", res("prod", "svc", `{}`))
	// "prod" must not match the "production" namespace by prefix.
	mustCreate(t, s, fns, res("production", "x", `{}`))

	tests := []struct {
		plural, namespace, want string
	}{
		{fns, "", "default/a,default/z,dev/m,prod/a,prod/b,production/x"},
		{fns, "prod", "prod/a,prod/b"},
		{fns, "default", "default/a,default/z"},
		{fns, "empty", ""},
		{"services", "", "prod/svc"},
		{"routes", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.plural+"/"+tt.namespace, func(t *testing.T) {
			rs, err := s.List(tt.plural, tt.namespace)
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(rs); got != tt.want {
				t.Errorf("List = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	s := newStore(t)
	created := mustCreate(t, s, fns, res("default", "hello", `{"runtime":"go","scale":{"min":0}}`))
	if _, err := s.UpdateStatus(fns, "default", "hello", json.RawMessage(`{"replicas":1}`)); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name    string
		spec    string
		labels  map[string]string
		wantGen int64
	}{
		{"same spec", `{"runtime":"go","scale":{"min":0}}`, nil, 1},
		{"same spec, other key order and spacing", `{ "scale": {"min": 0}, "runtime": "go" }`, nil, 1},
		{"labels only", `{"runtime":"go","scale":{"min":0}}`, map[string]string{"team": "a"}, 1},
		{"spec change", `{"runtime":"python","scale":{"min":0}}`, nil, 2},
		{"nested spec change", `{"runtime":"python","scale":{"min":1}}`, nil, 3},
		{"unchanged again", `{"runtime":"python","scale":{"min":1}}`, nil, 3},
	}
	last := rv(t, created)
	for _, st := range steps {
		in := res("default", "hello", st.spec)
		in.Metadata.Labels = st.labels
		in.Metadata.UID = "spoofed"
		in.Metadata.Generation = 100
		in.Status = json.RawMessage(`{"replicas":99}`)
		out, err := s.Update(fns, in)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if out.Metadata.Generation != st.wantGen {
			t.Errorf("%s: generation = %d, want %d", st.name, out.Metadata.Generation, st.wantGen)
		}
		if out.Metadata.UID != created.Metadata.UID || !out.Metadata.CreationTimestamp.Equal(*created.Metadata.CreationTimestamp) {
			t.Errorf("%s: uid/creation changed: %+v", st.name, out.Metadata)
		}
		if string(out.Status) != `{"replicas":1}` {
			t.Errorf("%s: status = %s, want the stored one kept", st.name, out.Status)
		}
		if n := rv(t, out); n <= last {
			t.Errorf("%s: resourceVersion %d did not go up from %d", st.name, n, last)
		}
		last = rv(t, out)
		got, err := s.Get(fns, "default", "hello")
		if err != nil {
			t.Fatal(err)
		}
		if got.Metadata.Generation != st.wantGen || string(got.Status) != `{"replicas":1}` || got.Metadata.ResourceVersion != out.Metadata.ResourceVersion {
			t.Errorf("%s: stored %+v status %s", st.name, got.Metadata, got.Status)
		}
	}
}

func TestUpdateConflict(t *testing.T) {
	s := newStore(t)
	created := mustCreate(t, s, fns, res("default", "hello", `{"v":1}`))

	// A writer that read the current version wins.
	in := res("default", "hello", `{"v":2}`)
	in.Metadata.ResourceVersion = created.Metadata.ResourceVersion
	updated, err := s.Update(fns, in)
	if err != nil {
		t.Fatalf("Update with the current version: %v", err)
	}

	// A writer holding the old version loses and changes nothing.
	stale := res("default", "hello", `{"v":3}`)
	stale.Metadata.ResourceVersion = created.Metadata.ResourceVersion
	if _, err := s.Update(fns, stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Update with a stale version: error = %v, want ErrConflict", err)
	}
	got, _ := s.Get(fns, "default", "hello")
	if string(got.Spec) != `{"v":2}` || got.Metadata.ResourceVersion != updated.Metadata.ResourceVersion {
		t.Errorf("after the conflict: spec %s rv %s, want {\"v\":2} rv %s", got.Spec, got.Metadata.ResourceVersion, updated.Metadata.ResourceVersion)
	}

	// A status write moves the version too, so it conflicts with a spec writer's old read.
	if _, err := s.UpdateStatus(fns, "default", "hello", json.RawMessage(`{"replicas":1}`)); err != nil {
		t.Fatal(err)
	}
	in = res("default", "hello", `{"v":4}`)
	in.Metadata.ResourceVersion = updated.Metadata.ResourceVersion
	if _, err := s.Update(fns, in); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update after a status write: error = %v, want ErrConflict", err)
	}

	// No version means no check.
	if _, err := s.Update(fns, res("default", "hello", `{"v":5}`)); err != nil {
		t.Errorf("Update without a version: %v", err)
	}
}

func TestUpdateStatus(t *testing.T) {
	s := newStore(t)
	created := mustCreate(t, s, fns, res("default", "hello", `{"runtime":"go"}`))

	out, err := s.UpdateStatus(fns, "default", "hello", json.RawMessage(`{"replicas":2,"url":"http://x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if out.Metadata.Generation != 1 || string(out.Spec) != `{"runtime":"go"}` {
		t.Errorf("UpdateStatus touched more than the status: %+v %s", out.Metadata, out.Spec)
	}
	if rv(t, out) <= rv(t, created) {
		t.Errorf("resourceVersion did not go up")
	}

	// The same status (in another spelling) is no write at all.
	again, err := s.UpdateStatus(fns, "default", "hello", json.RawMessage(`{ "url": "http://x", "replicas": 2 }`))
	if err != nil {
		t.Fatal(err)
	}
	if again.Metadata.ResourceVersion != out.Metadata.ResourceVersion {
		t.Errorf("an unchanged status bumped the version from %s to %s", out.Metadata.ResourceVersion, again.Metadata.ResourceVersion)
	}

	got, _ := s.Get(fns, "default", "hello")
	if string(got.Status) != `{"replicas":2,"url":"http://x"}` {
		t.Errorf("stored status = %s", got.Status)
	}
}

func TestDelete(t *testing.T) {
	s := newStore(t)
	created := mustCreate(t, s, fns, res("default", "hello", `{"runtime":"go"}`))
	deleted, err := s.Delete(fns, "default", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if deleted.Metadata.UID != created.Metadata.UID || string(deleted.Spec) != `{"runtime":"go"}` {
		t.Errorf("Delete returned %+v %s, want the deleted object", deleted.Metadata, deleted.Spec)
	}
	if rv(t, deleted) <= rv(t, created) {
		t.Errorf("the deletion's version %s is not after the creation's %s", deleted.Metadata.ResourceVersion, created.Metadata.ResourceVersion)
	}
	if _, err := s.Get(fns, "default", "hello"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	// The name is free again, with a new identity.
	recreated := mustCreate(t, s, fns, res("default", "hello", `{}`))
	if recreated.Metadata.UID == created.Metadata.UID || recreated.Metadata.Generation != 1 {
		t.Errorf("recreated object: %+v", recreated.Metadata)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flick.db")
	s := open(t, path)
	mustCreate(t, s, fns, res("default", "a", `{"runtime":"go"}`))
	mustCreate(t, s, fns, res("prod", "b", `{}`))
	mustCreate(t, s, fns, res("default", "gone", `{}`))
	mustCreate(t, s, "services", res("default", "web", `{}`))
	updated, err := s.Update(fns, res("default", "a", `{"runtime":"python"}`))
	if err != nil {
		t.Fatal(err)
	}
	withStatus, err := s.UpdateStatus(fns, "default", "a", json.RawMessage(`{"replicas":3}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(fns, "default", "gone"); err != nil {
		t.Fatal(err)
	}
	last, _ := s.Delete(fns, "prod", "b")
	mustCreate(t, s, fns, res("prod", "b", `{"again":true}`))
	before, _ := s.List(fns, "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	after, err := s.List(fns, "")
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(after)
	if string(b1) != string(b2) {
		t.Errorf("after reopening:\n%s\nwant:\n%s", b2, b1)
	}
	a, err := s.Get(fns, "default", "a")
	if err != nil {
		t.Fatal(err)
	}
	if a.Metadata.Generation != updated.Metadata.Generation || a.Metadata.UID != updated.Metadata.UID ||
		string(a.Status) != `{"replicas":3}` || a.Metadata.ResourceVersion != withStatus.Metadata.ResourceVersion {
		t.Errorf("a after reopening: %+v status %s", a.Metadata, a.Status)
	}
	if svcs, _ := s.List("services", ""); keys(svcs) != "default/web" {
		t.Errorf("services after reopening: %q", keys(svcs))
	}
	// Versions keep counting up across restarts, so watchers never see one twice.
	next := mustCreate(t, s, fns, res("default", "next", `{}`))
	if rv(t, next) <= rv(t, last) {
		t.Errorf("resourceVersion after reopening = %s, want more than %s", next.Metadata.ResourceVersion, last.Metadata.ResourceVersion)
	}
}

func TestOpenTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flick.db")
	s := open(t, path)
	defer s.Close()
	s2, err := store.Open(path)
	if err == nil {
		s2.Close()
		t.Fatal("opening an open store succeeded")
	}
	if !strings.Contains(err.Error(), "another flick server") {
		t.Errorf("error = %q, want it to mention another flick server", err)
	}
}

// next returns the next event, failing after a generous deadline.
func next(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
	return store.Event{}
}

func expectEvents(t *testing.T, ch <-chan store.Event, want ...string) {
	t.Helper()
	for _, w := range want {
		ev := next(t, ch)
		if got := ev.Type + " " + ev.Object.Key(); got != w {
			t.Fatalf("event %q, want %q", got, w)
		}
	}
}

func expectClosed(t *testing.T, ch <-chan store.Event) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			t.Fatalf("event %s %s, want the channel closed", ev.Type, ev.Object.Key())
		case <-deadline:
			t.Fatal("watch channel not closed")
		}
	}
}

func TestWatch(t *testing.T) {
	s := newStore(t)
	mustCreate(t, s, fns, res("prod", "b", `{}`))
	mustCreate(t, s, fns, res("prod", "a", `{}`))
	mustCreate(t, s, fns, res("dev", "c", `{}`))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prod, err := s.Watch(ctx, fns, "prod")
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Watch(ctx, fns, "")
	if err != nil {
		t.Fatal(err)
	}
	expectEvents(t, prod, "ADDED prod/a", "ADDED prod/b")
	expectEvents(t, all, "ADDED dev/c", "ADDED prod/a", "ADDED prod/b")

	if _, err := s.Update(fns, res("prod", "a", `{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, fns, res("dev", "d", `{}`))           // other namespace
	mustCreate(t, s, "services", res("prod", "svc", `{}`)) // other kind
	if _, err := s.UpdateStatus(fns, "prod", "b", json.RawMessage(`{"replicas":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateStatus(fns, "prod", "b", json.RawMessage(`{"replicas":1}`)); err != nil { // no change: no event
		t.Fatal(err)
	}
	if _, err := s.Delete(fns, "prod", "a"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, fns, res("prod", "z", `{}`))

	expectEvents(t, prod, "MODIFIED prod/a", "MODIFIED prod/b", "DELETED prod/a", "ADDED prod/z")
	expectEvents(t, all, "MODIFIED prod/a", "ADDED dev/d", "MODIFIED prod/b", "DELETED prod/a", "ADDED prod/z")

	cancel()
	expectClosed(t, prod)
	expectClosed(t, all)
}

func TestWatchEventContents(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx, fns, "")
	if err != nil {
		t.Fatal(err)
	}
	created := mustCreate(t, s, fns, res("default", "a", `{"v":1}`))
	updated, _ := s.Update(fns, res("default", "a", `{"v":2}`))
	status, _ := s.UpdateStatus(fns, "default", "a", json.RawMessage(`{"replicas":1}`))
	deleted, _ := s.Delete(fns, "default", "a")

	var last uint64
	for _, want := range []*apis.Resource{created, updated, status, deleted} {
		ev := next(t, ch)
		if ev.Object.Metadata.ResourceVersion != want.Metadata.ResourceVersion || string(ev.Object.Spec) != string(want.Spec) {
			t.Errorf("%s event: rv %s spec %s, want rv %s spec %s", ev.Type, ev.Object.Metadata.ResourceVersion, ev.Object.Spec, want.Metadata.ResourceVersion, want.Spec)
		}
		if n := rv(t, ev.Object); n <= last {
			t.Errorf("%s event: rv %d not after %d", ev.Type, n, last)
		} else {
			last = n
		}
	}
}

func TestWatchEndsOnClose(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "flick.db"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx, fns, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, ch)
	cancel() // cancelling after Close is harmless
}

// A watch started with a cancelled context still delivers its snapshot, then closes.
func TestWatchCancelledContext(t *testing.T) {
	s := newStore(t)
	mustCreate(t, s, fns, res("default", "a", `{}`))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ch, err := s.Watch(ctx, fns, "")
	if err != nil {
		t.Fatal(err)
	}
	expectEvents(t, ch, "ADDED default/a")
	expectClosed(t, ch)
}
