package apis

import "time"

// ImageInfo is a cached image (GET /apis/flick.dev/v1/images).
type ImageInfo struct {
	Digest string    `json:"digest"`
	Refs   []string  `json:"refs,omitempty"`
	Size   int64     `json:"size"`
	Pulled time.Time `json:"pulled"`
	// InUse: a revision or function pins this digest, so prune keeps it.
	InUse bool `json:"inUse"`
}

// ImageList answers the images endpoints; Removed is set by prune.
type ImageList struct {
	Items   []ImageInfo `json:"items"`
	Removed []ImageInfo `json:"removed,omitempty"`
}
