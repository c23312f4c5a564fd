package image

import (
	"errors"
	"testing"
)

func TestEntryPath(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		err        error
	}{
		{"usr/bin/env", "usr/bin/env", nil},
		{"./usr/bin/", "usr/bin", nil},
		{"/etc/passwd", "etc/passwd", nil},
		{"//etc//passwd", "etc/passwd", nil},
		{"a/./b/../c", "a/c", nil},
		{"./", ".", nil},
		{"", ".", nil},
		{"/", ".", nil},
		{"a/..", ".", nil},
		{"..", "", errEscapes},
		{"../x", "", errEscapes},
		{"../../etc/x", "", errEscapes},
		{"/../../x", "", errEscapes},
		{"a/../../x", "", errEscapes},
		{"..foo/x", "..foo/x", nil},
	} {
		got, err := entryPath(tc.name)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("entryPath(%q) = %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestClassifyWhiteout(t *testing.T) {
	for _, tc := range []struct {
		path   string
		kind   whiteout
		target string
		bad    bool
	}{
		{"etc/passwd", noWhiteout, "", false},
		{"etc/.wh.passwd", deleteBelow, "etc/passwd", false},
		{".wh.etc", deleteBelow, "etc", false},
		{"a/b/.wh..hidden", deleteBelow, "a/b/.hidden", false},
		{"etc/.wh..wh..opq", opaqueDir, "etc", false},
		{".wh..wh..opq", opaqueDir, ".", false},
		{"etc/.wh..wh.plnk", skipMeta, "", false},
		{".wh..wh.aufs", skipMeta, "", false},
		{"etc/x.wh.y", noWhiteout, "", false},
		{"etc/.wh.", noWhiteout, "", true},
		{"etc/.wh..", noWhiteout, "", true},
		{"etc/.wh...", noWhiteout, "", true},
	} {
		kind, target, err := classifyWhiteout(tc.path)
		if kind != tc.kind || target != tc.target || (err != nil) != tc.bad {
			t.Errorf("classifyWhiteout(%q) = %v, %q, %v; want %v, %q, bad=%v",
				tc.path, kind, target, err, tc.kind, tc.target, tc.bad)
		}
	}
}

func TestResolveInRoot(t *testing.T) {
	// links is a rootfs seen only through its symlinks; every other path
	// exists or not, it makes no difference to resolution.
	links := map[string]string{
		"abs":        "/",
		"up":         "../../..",
		"etc2":       "/etc",
		"lib":        "usr/lib",
		"usr/lib64":  "lib",
		"usr/up":     "../../../../tmp",
		"loop":       "loop",
		"a":          "b",
		"b":          "a",
		"var/run":    "/run",
		"deep/x":     "../lib/./y",
		"host":       "/home/user/outside",
		"dotdotlink": "..",
	}
	readLink := func(rel string) (string, bool, error) {
		target, ok := links[rel]
		return target, ok, nil
	}
	for _, tc := range []struct {
		path, want string
		err        error
	}{
		{".", ".", nil},
		{"file", "file", nil},
		{"etc/passwd", "etc/passwd", nil},
		{"abs/etc/passwd", "etc/passwd", nil},
		{"up/etc/passwd", "etc/passwd", nil},
		{"etc2/passwd", "etc/passwd", nil},
		{"lib/x.so", "usr/lib/x.so", nil},
		{"usr/lib64/x.so", "usr/lib/x.so", nil},
		{"usr/up/x", "tmp/x", nil},
		{"var/run/app.pid", "run/app.pid", nil},
		{"deep/x/z", "usr/lib/y/z", nil}, // a link whose target goes through another link
		{"host/.ssh/authorized_keys", "home/user/outside/.ssh/authorized_keys", nil},
		{"dotdotlink/dotdotlink/x", "x", nil},
		// The last element is never followed: callers replace it.
		{"abs", "abs", nil},
		{"etc2", "etc2", nil},
		{"loop/x", "", errTooManyLinks},
		{"a/x", "", errTooManyLinks},
	} {
		got, err := resolveInRoot(tc.path, readLink)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("resolveInRoot(%q) = %q, %v; want %q, %v", tc.path, got, err, tc.want, tc.err)
		}
	}
}
