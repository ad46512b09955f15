package labrpc

import (
	"reflect"
	"strconv"
	"sync"
)

// The trace's default summary of a message, used when no Summarize
// applies: the small fields a reader of a lab's timeline looks for
// (terms, indexes, ids, flags, short strings) and the lengths of slices
// and maps ("Term=3 LeaderId=0 PrevLogIndex=5 len(Entries)=2"). Nested
// structs and interfaces are left out. It runs only while the trace is on.

// maxSummary bounds a summary's length; longer ones end in "…".
const maxSummary = 160

// maxSummaryString is the longest string shown whole; longer ones show
// their length.
const maxSummaryString = 24

// summaryField is one field a type's summary shows.
type summaryField struct {
	index int
	name  string
	kind  reflect.Kind
}

var summaryPlans sync.Map // reflect.Type (a struct) → []summaryField

func summaryPlan(t reflect.Type) []summaryField {
	if p, ok := summaryPlans.Load(t); ok {
		return p.([]summaryField)
	}
	var plan []summaryField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		switch k := f.Type.Kind(); k {
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64, reflect.String, reflect.Slice, reflect.Map, reflect.Array:
			plan = append(plan, summaryField{index: i, name: f.Name, kind: k})
		}
	}
	summaryPlans.Store(t, plan)
	return plan
}

// defaultSummary summarises v, an args or reply value, as described above.
func defaultSummary(v any) string {
	rv := reflect.ValueOf(v)
	for i := 0; i < 3 && (rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface); i++ {
		if rv.IsNil() {
			return ""
		}
		rv = rv.Elem()
	}
	var buf [maxSummary + 32]byte // on the stack: the summary's one allocation is its string
	b := buf[:0]
	switch rv.Kind() {
	case reflect.Struct:
		for _, f := range summaryPlan(rv.Type()) {
			if len(b) > 0 {
				b = append(b, ' ')
			}
			b = appendField(b, f.name, rv.Field(f.index))
			if len(b) > maxSummary {
				return string(b[:maxSummary]) + "…"
			}
		}
	case reflect.Invalid:
	default:
		b = appendField(b, "", rv)
	}
	return string(b)
}

// appendField appends "name=value", or "len(name)=n" for a long string, a
// slice, a map or an array; without a name, the value alone (or "len=n").
func appendField(b []byte, name string, v reflect.Value) []byte {
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.Array:
		return appendLen(b, name, v.Len())
	case reflect.String:
		if v.Len() > maxSummaryString {
			return appendLen(b, name, v.Len())
		}
	}
	if name != "" {
		b = append(append(b, name...), '=')
	}
	switch v.Kind() {
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.AppendUint(b, v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.AppendFloat(b, v.Float(), 'g', 6, 64)
	case reflect.String:
		return strconv.AppendQuote(b, v.String())
	}
	return append(b, '?')
}

// appendLen appends "len(name)=n", or "len=n" without a name.
func appendLen(b []byte, name string, n int) []byte {
	if name == "" {
		b = append(b, "len="...)
	} else {
		b = append(append(append(b, "len("...), name...), ")="...)
	}
	return strconv.AppendInt(b, int64(n), 10)
}
