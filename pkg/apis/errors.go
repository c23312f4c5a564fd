package apis

import "strings"

// FieldError says which field of an object is wrong and why.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors collects every problem found in one object.
type FieldErrors []*FieldError

func (es FieldErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// OrNil returns nil for an empty list, so callers can return it as an error.
func (es FieldErrors) OrNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func (es *FieldErrors) add(field, msg string) {
	*es = append(*es, &FieldError{Field: field, Message: msg})
}
