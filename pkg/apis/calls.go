package apis

import (
	"net/http"
	"time"
)

// Call is an asynchronous invocation's state and result (GET .../namespaces/{ns}/calls/{id}).
type Call struct {
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	Function  string `json:"function"`
	// Status is queued, running, succeeded (a 2xx answer) or failed.
	Status   string     `json:"status"`
	Attempts int        `json:"attempts"`
	Accepted time.Time  `json:"accepted"`
	Finished *time.Time `json:"finished,omitempty"`
	// Code, Header and Body are the function's answer (the body's first MiB).
	Code         int         `json:"code,omitempty"`
	Error        string      `json:"error,omitempty"`
	Header       http.Header `json:"header,omitempty"`
	Body         []byte      `json:"body,omitempty"`
	CallbackURL  string      `json:"callbackUrl,omitempty"`
	CallbackCode int         `json:"callbackCode,omitempty"`
}
