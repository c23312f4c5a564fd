package kube

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Functions' code on a cluster: the CLI uploads a gzip'd tar as a ConfigMap of the system
// namespace, named after its digest, and the gateway serves it to the pods at
// /_flick/archives/sha256:HEX. etcd keeps it, so nothing else needs storage; a ConfigMap
// holds at most 1 MiB, which bounds the code (larger functions use an image).

const (
	// SystemNamespace is where Flick's own objects live on a cluster.
	SystemNamespace = "flick-system"
	// ArchiveKey is the binaryData key of an archive's ConfigMap.
	ArchiveKey = "archive.tar.gz"
	// MaxArchiveBytes is what a ConfigMap can hold, less room for its metadata.
	MaxArchiveBytes = 1000 << 10
	labelArchive    = "flick.dev/archive"
)

// ArchiveConfigMap is the name of the ConfigMap holding the archive of a digest.
func ArchiveConfigMap(digest string) (string, error) {
	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexDigest) != 64 {
		return "", fmt.Errorf("archive digest %q: want sha256:<64 hex digits>", digest)
	}
	if _, err := hex.DecodeString(hexDigest); err != nil {
		return "", fmt.Errorf("archive digest %q: want sha256:<64 hex digits>", digest)
	}
	return "archive-" + hexDigest, nil
}

// UploadArchive stores a code archive in the cluster and returns its digest; the same code
// uploaded twice is stored once.
func (c *Client) UploadArchive(ctx context.Context, r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxArchiveBytes+1))
	if err != nil {
		return "", err
	}
	if len(data) > MaxArchiveBytes {
		return "", fmt.Errorf("the code archive is over the %d KiB a cluster keeps in a ConfigMap: use an image", MaxArchiveBytes>>10)
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	name, _ := ArchiveConfigMap(digest)
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": SystemNamespace,
			"labels":      map[string]any{labelArchive: "true"},
			"annotations": map[string]any{"flick.dev/digest": digest}},
		"binaryData": map[string]any{ArchiveKey: data},
	}}
	cms := c.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(SystemNamespace)
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("upload code to %s: namespace %s does not exist: install Flick first (flick install)", c.host, SystemNamespace)
		}
		return "", fmt.Errorf("upload code to %s: %w", c.host, err)
	}
	return digest, nil
}

// VerifyArchive checks that data is the archive of digest.
func VerifyArchive(digest string, data []byte) error {
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return fmt.Errorf("archive %s: content has digest %s", digest, got)
	}
	if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		return fmt.Errorf("archive %s: not gzip", digest)
	}
	return nil
}
