package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flickdev/flick/internal/archive"
	"github.com/flickdev/flick/pkg/apis"
	"github.com/flickdev/flick/pkg/client"
)

func newApplyCmd(o *options) *cobra.Command {
	var files []string
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update resources from YAML manifests (several documents per file)",
		Example: `  flick apply -f examples/hello-python/function.yaml
  flick apply -f examples/ --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("-f is required: a manifest file, a directory of them, or - for standard input")
			}
			if wait && o.kubeconfig != "" {
				return fmt.Errorf("--wait works with the embedded server only: on a cluster, watch with kubectl get -w")
			}
			rc, err := o.resources()
			if err != nil {
				return err
			}
			docs, err := readManifests(files, cmd.InOrStdin())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var applied []*apis.Resource
			for _, d := range docs {
				if d.res.Metadata.Namespace == "" {
					d.res.Metadata.Namespace = o.namespace
					if k, err := apis.LookupTypeMeta(d.res.TypeMeta); err == nil && k.Namespace != "" {
						d.res.Metadata.Namespace = k.Namespace
					}
				}
				// Code goes to the embedded server's archive store, or to the cluster's.
				upload, _ := rc.(archiveUploader)
				if err := uploadSources(cmd.Context(), upload, d.res, d.dir); err != nil {
					return fmt.Errorf("%s: %w", d.file, err)
				}
				stored, warns, created, err := rc.Apply(cmd.Context(), d.res)
				if err != nil {
					return fmt.Errorf("%s: %s %s: %w", d.file, strings.ToLower(d.res.Kind), d.res.Metadata.Name, err)
				}
				for _, w := range warns {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s %s: %s\n", strings.ToLower(d.res.Kind), d.res.Metadata.Name, w)
				}
				verb := "configured"
				if created {
					verb = "created"
				}
				fmt.Fprintf(out, "%s/%s %s\n", strings.ToLower(stored.Kind), stored.Metadata.Name, verb)
				applied = append(applied, stored)
			}
			if !wait {
				return nil
			}
			failed := 0
			c := rc.(*client.Client)
			for _, r := range applied {
				st, err := waitReady(cmd.Context(), c, r, timeout, out)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s/%s: %v\n", strings.ToLower(r.Kind), r.Metadata.Name, err)
					failed++
					continue
				}
				fmt.Fprintf(out, "%s/%s ready%s\n", strings.ToLower(r.Kind), r.Metadata.Name, urlSuffix(st))
			}
			if failed > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file, directory (its .yaml, .yml and .json files, recursively) or - for stdin")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every applied resource is ready and print its URL")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// manifest is one document and where it came from (source paths are relative to it).
type manifest struct {
	file string
	dir  string
	res  *apis.Resource
}

func readManifests(paths []string, stdin io.Reader) ([]manifest, error) {
	var out []manifest
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read stdin: %w", err)
			}
			wd, _ := os.Getwd()
			docs, err := decodeFile("stdin", data, wd)
			if err != nil {
				return nil, err
			}
			out = append(out, docs...)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		files := []string{p}
		if fi.IsDir() {
			files = nil
			err := filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				switch strings.ToLower(filepath.Ext(path)) {
				case ".yaml", ".yml", ".json":
					if !d.IsDir() {
						files = append(files, path)
					}
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("read manifests in %s: %w", p, err)
			}
			sort.Strings(files)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("read manifest: %w", err)
			}
			docs, err := decodeFile(f, data, filepath.Dir(f))
			if err != nil {
				return nil, err
			}
			out = append(out, docs...)
		}
	}
	return out, nil
}

func decodeFile(name string, data []byte, dir string) ([]manifest, error) {
	resources, err := apis.DecodeManifests(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out := make([]manifest, len(resources))
	for i, r := range resources {
		out[i] = manifest{file: name, dir: dir, res: r}
	}
	return out, nil
}

// archiveUploader stores code archives: the embedded server's client and the cluster's.
type archiveUploader interface {
	UploadArchive(ctx context.Context, r io.Reader) (string, error)
}

// uploadSources packs every local source path of the object, uploads it, and records the
// digest in the object, so the server keeps the code even when the path goes away.
func uploadSources(ctx context.Context, c archiveUploader, r *apis.Resource, baseDir string) error {
	obj, err := apis.Decode(r)
	if err != nil {
		return err
	}
	var src *apis.Source
	field := ""
	switch o := obj.(type) {
	case *apis.Function:
		src, field = o.Spec.Source, "spec.source"
	case *apis.Service:
		if cs := o.Spec.Template.Spec.Containers; len(cs) > 0 {
			src, field = cs[0].Source, "spec.template.spec.containers[0].source"
		}
	case *apis.Configuration:
		if cs := o.Spec.Template.Spec.Containers; len(cs) > 0 {
			src, field = cs[0].Source, "spec.template.spec.containers[0].source"
		}
	}
	if src == nil || src.Path == "" || src.Archive != "" {
		return nil
	}
	if c == nil {
		return fmt.Errorf("%s %q: this server takes no code uploads: give %s.archive or use an image", field, src.Path, field)
	}
	path := src.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	digest, err := uploadPath(ctx, c, path)
	if err != nil {
		return fmt.Errorf("%s %q: %w", field, src.Path, err)
	}
	src.Archive = digest
	updated, err := apis.Encode(obj)
	if err != nil {
		return err
	}
	r.Spec = updated.Spec
	return nil
}

func uploadPath(ctx context.Context, c archiveUploader, path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("source not found: %w", err)
	}
	var buf bytes.Buffer
	if err := archive.Pack(path, &buf); err != nil {
		return "", err
	}
	return c.UploadArchive(ctx, &buf)
}

// waitReady watches an object until its current generation is Ready (or failed), printing
// each new progress message.
func waitReady(ctx context.Context, c *client.Client, r *apis.Resource, timeout time.Duration, out io.Writer) (apis.WorkloadStatus, error) {
	k, err := apis.LookupTypeMeta(r.TypeMeta)
	if err != nil {
		return apis.WorkloadStatus{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var st apis.WorkloadStatus
	var result error
	lastMsg := ""
	err = c.Watch(ctx, k, r.Metadata.Namespace, r.Metadata.Name, func(ev client.Event) (bool, error) {
		if ev.Type == "DELETED" {
			return true, fmt.Errorf("deleted while waiting")
		}
		st = apis.WorkloadStatus{}
		if len(ev.Object.Status) > 0 {
			if err := jsonUnmarshal(ev.Object.Status, &st); err != nil {
				return true, err
			}
		}
		ready := apis.FindCondition(st.Conditions, apis.ConditionReady)
		if ready == nil || st.ObservedGeneration < r.Metadata.Generation {
			return false, nil
		}
		switch ready.Status {
		case apis.ConditionTrue:
			if ready.Message != "" && ready.Message != lastMsg {
				fmt.Fprintf(out, "%s/%s: %s\n", strings.ToLower(r.Kind), r.Metadata.Name, ready.Message)
			}
			return true, nil
		case apis.ConditionFalse:
			result = fmt.Errorf("%s:\n%s", ready.Reason, ready.Message)
			return true, nil
		}
		if ready.Message != "" && ready.Message != lastMsg {
			lastMsg = ready.Message
			fmt.Fprintf(out, "%s/%s: %s...\n", strings.ToLower(r.Kind), r.Metadata.Name, ready.Message)
		}
		return false, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return st, fmt.Errorf("not ready after %s", timeout)
		}
		return st, err
	}
	return st, result
}

// urlSuffix is ": URL" for a ready object that has one (a workload, a broker's address).
func urlSuffix(st apis.WorkloadStatus) string {
	if st.URL != "" {
		return ": " + st.URL
	}
	return ""
}
