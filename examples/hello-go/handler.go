// Package function is a Flick Go function: Flick compiles it with a generated main.
package function

import (
	"fmt"
	"net/http"
)

// Handle answers every request.
func Handle(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "world"
	}
	fmt.Fprintf(w, "Hello, %s, from Go!\n", name)
}
