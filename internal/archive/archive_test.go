package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tarEntry describes one member of a hand-built (possibly hostile) archive.
type tarEntry struct {
	name string
	typ  byte
	mode int64
	body string
	link string
}

func reg(name, body string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeReg, mode: 0o644, body: body}
}
func dir(name string) tarEntry { return tarEntry{name: name, typ: tar.TypeDir, mode: 0o755} }
func sym(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}

func makeTarGz(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("write header %q: %v", e.name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tree describes a directory: "f 0755 <content>", "d 0755" or "l <target>".
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "l " + target
		case fi.IsDir():
			out[rel] = "d " + strconv.FormatUint(uint64(fi.Mode().Perm()), 8)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "f " + strconv.FormatUint(uint64(fi.Mode().Perm()), 8) + " " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t *testing.T, p, body string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // defeat umask
		t.Fatal(err)
	}
}

// sampleDir builds a small function tree with the interesting cases.
func sampleDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	writeFile(t, filepath.Join(d, "main.py"), "print('hi')\n", 0o644)
	writeFile(t, filepath.Join(d, "bin", "run"), "#!/bin/sh\necho run\n", 0o755)
	writeFile(t, filepath.Join(d, "lib", "a", "b.txt"), "b", 0o600)
	writeFile(t, filepath.Join(d, ".git", "HEAD"), "ref: refs/heads/main\n", 0o644)
	writeFile(t, filepath.Join(d, "vendor", "x", ".git", "config"), "[core]\n", 0o644)
	if err := os.MkdirAll(filepath.Join(d, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("lib/a/b.txt", filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../main.py", filepath.Join(d, "lib", "a", "up")); err != nil {
		t.Fatal(err)
	}
	return d
}

var sampleWant = map[string]string{
	"bin":         "d 755",
	"bin/run":     "f 755 #!/bin/sh\necho run\n",
	"empty":       "d 755",
	"lib":         "d 755",
	"lib/a":       "d 755",
	"lib/a/b.txt": "f 644 b",
	"lib/a/up":    "l ../../main.py",
	"link":        "l lib/a/b.txt",
	"main.py":     "f 644 print('hi')\n",
	"vendor":      "d 755",
	"vendor/x":    "d 755",
}

func packBytes(t *testing.T, src string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Pack(src, &buf); err != nil {
		t.Fatalf("Pack(%s): %v", src, err)
	}
	return buf.Bytes()
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// roundTrip stores data and unpacks it into a fresh directory.
func roundTrip(t *testing.T, data []byte) map[string]string {
	t.Helper()
	s := newStore(t)
	d, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if err := s.Unpack(d, dest); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	return tree(t, dest)
}

func tarHeaders(t *testing.T, data []byte) []*tar.Header {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var hdrs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs = append(hdrs, h)
	}
}

func TestPackDirDeterministic(t *testing.T) {
	src := sampleDir(t)
	first := packBytes(t, src)
	if second := packBytes(t, src); !bytes.Equal(first, second) {
		t.Fatal("packing the same directory twice gave different bytes")
	}
	d1, _ := Digest(bytes.NewReader(first))

	// Touching files or changing non-exec permission bits must not matter.
	later := time.Now().Add(time.Hour)
	filepath.WalkDir(src, func(p string, _ fs.DirEntry, _ error) error {
		os.Chtimes(p, later, later)
		return nil
	})
	os.Chmod(filepath.Join(src, "main.py"), 0o664)
	d2, _ := Digest(bytes.NewReader(packBytes(t, src)))
	if d1 != d2 {
		t.Fatalf("digest changed after touch: %s != %s", d1, d2)
	}

	var names []string
	for _, h := range tarHeaders(t, first) {
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: owner/time not zeroed: %+v", h.Name, h)
		}
	}
	wantNames := []string{"bin/", "bin/run", "empty/", "lib/", "lib/a/", "lib/a/b.txt", "lib/a/up", "link", "main.py", "vendor/", "vendor/x/"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("entries = %q, want %q", names, wantNames)
	}
}

func TestPackPutUnpackRoundTrip(t *testing.T) {
	got := roundTrip(t, packBytes(t, sampleDir(t)))
	if !reflect.DeepEqual(got, sampleWant) {
		t.Fatalf("unpacked tree:\n%v\nwant:\n%v", got, sampleWant)
	}
}

func TestPackRejectsEscapingSymlink(t *testing.T) {
	for _, target := range []string{"../outside", "/etc/passwd"} {
		src := t.TempDir()
		if err := os.Symlink(target, filepath.Join(src, "bad")); err != nil {
			t.Fatal(err)
		}
		err := Pack(src, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `"bad"`) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Pack with symlink to %s: err = %v, want ErrInvalid naming \"bad\"", target, err)
		}
	}
}

func TestPackZip(t *testing.T) {
	zipPath := filepath.Join(t.TempDir(), "fn.zip")
	f, err := os.Create(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	add := func(name string, mode fs.FileMode, body string) {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	// Deliberately unsorted, with an implicit directory (lib/a) and no
	// entry for vendor/x's parent: Pack must normalise all of that.
	add("main.py", 0o644, "print('hi')\n")
	add("lib/a/b.txt", 0o600, "b")
	add("lib/a/up", fs.ModeSymlink|0o777, "../../main.py")
	add("bin/run", 0o755, "#!/bin/sh\necho run\n")
	add("empty/", fs.ModeDir|0o755, "")
	add("link", fs.ModeSymlink|0o777, "lib/a/b.txt")
	add("vendor/x/", fs.ModeDir|0o700, "")
	add(".git/HEAD", 0o644, "ref\n")
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	fromZip := packBytes(t, zipPath)
	if got := roundTrip(t, fromZip); !reflect.DeepEqual(got, sampleWant) {
		t.Fatalf("unpacked zip:\n%v\nwant:\n%v", got, sampleWant)
	}
	// The same tree as a zip or as a directory is the same bundle.
	if !bytes.Equal(fromZip, packBytes(t, sampleDir(t))) {
		t.Error("Pack(zip) differs from Pack(dir) of the same tree")
	}
}

func TestPackZipHostile(t *testing.T) {
	for _, name := range []string{"../evil", "/abs", `..\evil`} {
		zipPath := filepath.Join(t.TempDir(), "bad.zip")
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create("ok.txt")
		io.WriteString(w, "ok")
		w, _ = zw.CreateHeader(&zip.FileHeader{Name: name})
		io.WriteString(w, "evil")
		zw.Close()
		os.WriteFile(zipPath, buf.Bytes(), 0o644)
		err := Pack(zipPath, io.Discard)
		if err == nil || !strings.Contains(err.Error(), strconv.Quote(name)) {
			t.Errorf("Pack(zip with %q): err = %v, want it to name the entry", name, err)
		}
	}
}

func TestPackTarGz(t *testing.T) {
	fromDir := packBytes(t, sampleDir(t))
	for _, name := range []string{"fn.tar.gz", "fn.tgz"} {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, fromDir, 0o644); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(packBytes(t, p), fromDir) {
			t.Errorf("repacking %s changed its bytes", name)
		}
	}

	// A hand-made tarball in another order, with "./" names and a PAX
	// global header (as git archive writes) normalises to the same bytes.
	messy := makeTarGz(t, []tarEntry{
		{name: "pax_global_header", typ: tar.TypeXGlobalHeader},
		dir("./"),
		reg("./main.py", "print('hi')\n"),
		sym("link", "lib/a/b.txt"),
		{name: "bin/run", typ: tar.TypeReg, mode: 0o775, body: "#!/bin/sh\necho run\n"},
		reg("lib/a/b.txt", "b"),
		sym("lib/a/up", "../../main.py"),
		dir("empty"),
		dir("vendor/x/"),
	})
	p := filepath.Join(t.TempDir(), "messy.tgz")
	os.WriteFile(p, messy, 0o644)
	if !bytes.Equal(packBytes(t, p), fromDir) {
		t.Error("messy tarball did not normalise to Pack(dir) bytes")
	}

	bad := filepath.Join(t.TempDir(), "bad.tgz")
	os.WriteFile(bad, makeTarGz(t, []tarEntry{reg("../evil", "x")}), 0o644)
	if err := Pack(bad, io.Discard); err == nil || !strings.Contains(err.Error(), `"../evil"`) {
		t.Errorf("Pack(hostile tgz): err = %v", err)
	}
}

func TestPackSingleFile(t *testing.T) {
	d := t.TempDir()
	bin := filepath.Join(d, "handler")
	writeFile(t, bin, "\x7fELF...", 0o755)
	data := packBytes(t, bin)
	hdrs := tarHeaders(t, data)
	if len(hdrs) != 1 || hdrs[0].Name != "handler" || hdrs[0].Mode != 0o755 {
		t.Fatalf("headers = %+v, want one 0755 entry named handler", hdrs)
	}
	want := map[string]string{"handler": "f 755 \x7fELF..."}
	if got := roundTrip(t, data); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}

	// Non-executable single file keeps 0644.
	txt := filepath.Join(d, "config.json")
	writeFile(t, txt, "{}", 0o600)
	if got := roundTrip(t, packBytes(t, txt)); got["config.json"] != "f 644 {}" {
		t.Fatalf("got %v", got)
	}
}

func TestHostileArchives(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
		bad     string // entry the error must name
	}{
		{"dotdot", []tarEntry{reg("ok.txt", "ok"), reg("../evil", "x")}, "../evil"},
		{"dotdot inside", []tarEntry{reg("a/../../evil", "x")}, "a/../../evil"},
		{"absolute", []tarEntry{reg("/abs-flick-archive-test", "x")}, "/abs-flick-archive-test"},
		{"backslash", []tarEntry{reg(`..\evil`, "x")}, `..\evil`},
		{"symlink outside", []tarEntry{sym("link", "../outside"), reg("link/pwned", "x")}, "link"},
		{"symlink absolute", []tarEntry{sym("link", "/etc")}, "link"},
		{"symlink deep escape", []tarEntry{sym("a/b/link", "../../../outside")}, "a/b/link"},
		{"symlink via symlink dotdot", []tarEntry{sym("s", "."), sym("t", "s/../outside")}, "t"},
		{"hard link", []tarEntry{reg("ok.txt", "ok"), {name: "hard", typ: tar.TypeLink, link: "ok.txt"}}, "hard"},
		{"file under symlinked dir", []tarEntry{dir("sub"), sym("d", "sub"), reg("d/x", "x")}, "d/x"},
		{"symlink replaces used dir", []tarEntry{reg("x/y", "y"), sym("x", ".")}, "x"},
		{"file under file", []tarEntry{reg("f", "f"), reg("f/x", "x")}, "f/x"},
		{"duplicate", []tarEntry{reg("a", "1"), reg("a", "2")}, "a"},
		{"char device", []tarEntry{{name: "dev", typ: tar.TypeChar}}, "dev"},
		{"block device", []tarEntry{{name: "blk", typ: tar.TypeBlock}}, "blk"},
		{"fifo", []tarEntry{{name: "fifo", typ: tar.TypeFifo}}, "fifo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := makeTarGz(t, tc.entries)
			quoted := strconv.Quote(tc.bad)

			s := newStore(t)
			_, err := s.Put(bytes.NewReader(data), 1<<20)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), quoted) {
				t.Fatalf("Put: err = %v, want ErrInvalid naming %s", err, quoted)
			}
			if ents, _ := os.ReadDir(s.dir); len(ents) != 0 {
				t.Fatalf("Put left %d files in the store", len(ents))
			}

			base := t.TempDir()
			os.Mkdir(filepath.Join(base, "outside"), 0o755)
			dest := filepath.Join(base, "dest")
			err = UnpackReader(bytes.NewReader(data), dest)
			if err == nil || !strings.Contains(err.Error(), quoted) {
				t.Fatalf("UnpackReader: err = %v, want it to name %s", err, quoted)
			}
			// dest was created by UnpackReader, so it is cleaned up too.
			want := map[string]string{"outside": "d 755"}
			if got := tree(t, base); !reflect.DeepEqual(got, want) {
				t.Fatalf("files written outside dest: %v", got)
			}
			if _, err := os.Lstat("/abs-flick-archive-test"); err == nil {
				t.Fatal("absolute entry was written")
			}
		})
	}
}

// Even if dest already holds a symlink pointing out (e.g. a reused
// directory), os.Root keeps extraction inside.
func TestUnpackPreexistingEscapingSymlink(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	dest := filepath.Join(base, "dest")
	os.Mkdir(outside, 0o755)
	os.Mkdir(dest, 0o755)
	if err := os.Symlink(outside, filepath.Join(dest, "pre")); err != nil {
		t.Fatal(err)
	}
	for _, entries := range [][]tarEntry{
		{reg("pre/x", "x")},
		{reg("pre", "x")},
	} {
		err := UnpackReader(bytes.NewReader(makeTarGz(t, entries)), dest)
		if err == nil || !strings.Contains(err.Error(), strconv.Quote(entries[0].name)) {
			t.Errorf("err = %v, want it to name %q", err, entries[0].name)
		}
	}
	if got := tree(t, outside); len(got) != 0 {
		t.Fatalf("wrote outside dest: %v", got)
	}
}

func TestUnpackModes(t *testing.T) {
	data := makeTarGz(t, []tarEntry{
		{name: "exec", typ: tar.TypeReg, mode: 0o700, body: "x"},
		{name: "suid", typ: tar.TypeReg, mode: 0o4777, body: "s"},
		{name: "ro", typ: tar.TypeReg, mode: 0o400, body: "r"},
		{name: "locked/", typ: tar.TypeDir, mode: 0o000},
		{name: "locked/f", typ: tar.TypeReg, mode: 0o644, body: "f"},
	})
	dest := filepath.Join(t.TempDir(), "out")
	if err := UnpackReader(bytes.NewReader(data), dest); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"exec":     "f 755 x",
		"suid":     "f 755 s",
		"ro":       "f 644 r",
		"locked":   "d 755",
		"locked/f": "f 644 f",
	}
	if got := tree(t, dest); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// No setuid bit even though the archive asked for it.
	if fi, _ := os.Stat(filepath.Join(dest, "suid")); fi.Mode()&fs.ModeSetuid != 0 {
		t.Fatal("setuid bit preserved")
	}
}

func TestPutLimits(t *testing.T) {
	data := makeTarGz(t, []tarEntry{reg("a", "0123456789"), reg("b", "x"), reg("c", "y")})

	tests := []struct {
		name     string
		limits   Limits
		maxBytes int64
		wantErr  bool
	}{
		{"fits", DefaultLimits, int64(len(data)), false},
		{"compressed too large", DefaultLimits, int64(len(data)) - 1, true},
		{"unpacked too large", Limits{MaxUnpackedBytes: 11, MaxEntries: 10}, 1 << 20, true},
		{"unpacked exactly at limit", Limits{MaxUnpackedBytes: 12, MaxEntries: 10}, 1 << 20, false},
		{"too many entries", Limits{MaxUnpackedBytes: 1 << 20, MaxEntries: 2}, 1 << 20, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			s.Limits = tc.limits
			d, err := s.Put(bytes.NewReader(data), tc.maxBytes)
			if !tc.wantErr {
				if err != nil || !s.Has(d) {
					t.Fatalf("Put: %q, %v", d, err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			if ents, _ := os.ReadDir(s.dir); len(ents) != 0 {
				t.Fatalf("Put left %d files in the store", len(ents))
			}
		})
	}
}

func TestCapReader(t *testing.T) {
	c := &capReader{r: strings.NewReader("abcdef"), left: 6}
	if b, err := io.ReadAll(c); err != nil || string(b) != "abcdef" {
		t.Fatalf("exact fit: %q, %v", b, err)
	}
	c = &capReader{r: strings.NewReader("abcdefg"), left: 6}
	if _, err := io.ReadAll(c); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over: err = %v, want ErrTooLarge", err)
	}
}

func TestPutIdempotentAndOpen(t *testing.T) {
	s := newStore(t)
	data := packBytes(t, sampleDir(t))
	d1, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil || d1 != d2 {
		t.Fatalf("second Put: %q, %v (first %q)", d2, err, d1)
	}
	if want, _ := Digest(bytes.NewReader(data)); d1 != want {
		t.Fatalf("Put digest %s != Digest %s", d1, want)
	}
	if ents, _ := os.ReadDir(s.dir); len(ents) != 1 {
		t.Fatalf("store holds %d files, want 1", len(ents))
	}
	rc, err := s.Open(d1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Open returned different bytes (err %v)", err)
	}

	missing := "sha256:" + strings.Repeat("0", 64)
	if s.Has(missing) {
		t.Fatal("Has(missing) = true")
	}
	if _, err := s.Open(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open(missing): err = %v, want ErrNotExist", err)
	}
	if err := s.Unpack(missing, filepath.Join(t.TempDir(), "x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Unpack(missing): err = %v, want ErrNotExist", err)
	}
}

func TestCorruptionDetected(t *testing.T) {
	s := newStore(t)
	data := makeTarGz(t, []tarEntry{reg("a", "a")})
	d, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// Same valid archive under the wrong name simulates bit rot that still
	// decodes; only the digest check can catch it.
	other := makeTarGz(t, []tarEntry{reg("a", "b")})
	hexPart, _ := parseDigest(d)
	if err := os.WriteFile(s.path(hexPart), other, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if err := s.Unpack(d, dest); err == nil || !strings.Contains(err.Error(), "does not match digest") {
		t.Fatalf("Unpack(corrupt): err = %v", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("dest left behind after corrupt unpack")
	}
}

func TestBadDigest(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	for _, d := range []string{
		"",
		"sha256:",
		hex64,
		"sha512:" + hex64,
		"SHA256:" + hex64,
		"sha256:" + strings.ToUpper(hex64),
		"sha256:" + hex64[:63],
		"sha256:" + hex64 + "0",
		"sha256:../../../../etc/passwd",
		"sha256:" + hex64[:60] + "/../",
		"sha256:" + hex64[:62] + "..",
		"sha256:" + hex64 + "\x00",
	} {
		s := newStore(t)
		if _, err := s.Open(d); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Open(%q): err = %v, want ErrBadDigest", d, err)
		}
		dest := filepath.Join(t.TempDir(), "out")
		if err := s.Unpack(d, dest); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Unpack(%q): err = %v, want ErrBadDigest", d, err)
		}
		if s.Has(d) {
			t.Errorf("Has(%q) = true", d)
		}
	}
}

func TestUnpackGarbage(t *testing.T) {
	good := makeTarGz(t, []tarEntry{reg("a", strings.Repeat("a", 1000))})
	for name, data := range map[string][]byte{
		"not gzip":  []byte("hello"),
		"truncated": good[:len(good)/2],
		"bad crc":   append(append([]byte{}, good[:len(good)-8]...), 0, 0, 0, 0, 0, 0, 0, 0),
	} {
		s := newStore(t)
		if _, err := s.Put(bytes.NewReader(data), 1<<20); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Put err = %v, want ErrInvalid", name, err)
		}
	}
}
