package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The types below decode response fields tolerantly: RPC APIs are not
// consistent about numbers sent as strings, booleans sent as "true", or
// arrays wrapped in an object.

// String decodes a JSON string, or keeps the literal text of any other JSON
// value (a numeric Code, say); null is "".
type String string

// UnmarshalJSON implements json.Unmarshaler.
func (f *String) UnmarshalJSON(b []byte) error {
	var s string
	switch {
	case string(b) == "null":
		*f = ""
	case json.Unmarshal(b, &s) == nil:
		*f = String(s)
	default:
		*f = String(bytes.TrimSpace(b))
	}
	return nil
}

// Int decodes a JSON number or a numeric string; null and "" are 0.
type Int int64

// UnmarshalJSON implements json.Unmarshaler.
func (f *Int) UnmarshalJSON(b []byte) error {
	text := string(bytes.TrimSpace(b))
	if text == "null" {
		*f = 0
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		text = strings.TrimSpace(s)
		if text == "" {
			*f = 0
			return nil
		}
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		*f = Int(n)
		return nil
	}
	x, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return fmt.Errorf("%s is not a number", text)
	}
	*f = Int(int64(x))
	return nil
}

// Bool decodes a JSON boolean or the strings "true"/"false" (any case);
// null is false.
type Bool bool

// UnmarshalJSON implements json.Unmarshaler.
func (f *Bool) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case bool:
		*f = Bool(v)
	case string:
		*f = Bool(strings.EqualFold(v, "true"))
	case nil:
		*f = false
	default:
		return fmt.Errorf("%s is not a boolean", b)
	}
	return nil
}

// List decodes a JSON array, or the RPC habit of wrapping one in an object
// ({"Instance": [...]}); null and an object holding no array are empty.
type List[T any] []T

// UnmarshalJSON implements json.Unmarshaler.
func (l *List[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*l = nil
		return nil
	}
	if b[0] == '{' {
		var wrapper map[string]json.RawMessage
		if err := json.Unmarshal(b, &wrapper); err != nil {
			return err
		}
		for _, inner := range wrapper {
			if inner = bytes.TrimSpace(inner); len(inner) > 0 && inner[0] == '[' {
				b = inner
				break
			}
		}
		if b[0] == '{' {
			*l = nil
			return nil
		}
	}
	var items []T
	if err := json.Unmarshal(b, &items); err != nil {
		return err
	}
	*l = items
	return nil
}
