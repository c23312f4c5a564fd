package server

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/flickdev/flick/internal/image"
	"github.com/flickdev/flick/pkg/apis"
)

// imagesInUse are the digests some stored revision or function runs (its pinned image).
func (s *Server) imagesInUse() (map[string]bool, error) {
	inUse := map[string]bool{}
	for _, plural := range []string{"revisions", "functions"} {
		items, err := s.store.List(plural, "")
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			var st apis.WorkloadStatus
			if len(it.Status) == 0 || json.Unmarshal(it.Status, &st) != nil {
				continue
			}
			if _, digest, ok := strings.Cut(st.ImageDigest(), "@"); ok {
				inUse[digest] = true
			}
		}
	}
	return inUse, nil
}

func imageInfo(img image.Image, inUse map[string]bool) apis.ImageInfo {
	refs := img.Refs
	if len(refs) == 0 && img.Ref != "" {
		refs = []string{img.Ref}
	}
	return apis.ImageInfo{Digest: img.Digest, Refs: refs, Size: img.Size, Pulled: img.Pulled, InUse: inUse[img.Digest]}
}

// cachedImages lists the cache, each image marked in use or not.
func (s *Server) cachedImages(inUse map[string]bool) ([]apis.ImageInfo, error) {
	items := []apis.ImageInfo{}
	if s.images == nil {
		return items, nil
	}
	list, err := s.images.List()
	if err != nil {
		return nil, err
	}
	for _, img := range list {
		items = append(items, imageInfo(img, inUse))
	}
	return items, nil
}

// listImages answers GET /apis/flick.dev/v1/images.
func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	inUse, err := s.imagesInUse()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	items, err := s.cachedImages(inUse)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, apis.ImageList{Items: items})
}

// pruneImages answers POST /apis/flick.dev/v1/images/prune: cached images no revision or
// function pins are removed.
func (s *Server) pruneImages(w http.ResponseWriter, r *http.Request) {
	inUse, err := s.imagesInUse()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := apis.ImageList{Removed: []apis.ImageInfo{}}
	if s.images != nil {
		removed, err := s.images.Prune(inUse)
		if err != nil {
			writeErr(w, http.StatusInternalServerError, "prune images: "+err.Error())
			return
		}
		for _, img := range removed {
			out.Removed = append(out.Removed, imageInfo(img, inUse))
		}
	}
	if out.Items, err = s.cachedImages(inUse); err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// pullImage answers POST /apis/flick.dev/v1/images/pull {"image": REF}: the image is
// fetched ahead of a deploy.
func (s *Server) pullImage(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Image string `json:"image"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil || body.Image == "" {
		writeErr(w, http.StatusBadRequest, `the body must be {"image": "REF"}`)
		return
	}
	if s.images == nil {
		writeErr(w, http.StatusUnprocessableEntity, "this server cannot run images: "+s.noImages)
		return
	}
	img, err := s.images.Pull(r.Context(), body.Image)
	if err != nil {
		writeErr(w, http.StatusBadGateway, err.Error())
		return
	}
	inUse, _ := s.imagesInUse()
	writeJSON(w, http.StatusOK, imageInfo(*img, inUse))
}
