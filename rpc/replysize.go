package rpc

import (
	"math"
	"reflect"
	"sync"
)

// replySize estimates the memory, in bytes, that an at-most-once table
// keeps when it records a call's reply and application error: the bytes
// reachable from them through pointers, strings, slices, maps and
// interfaces, each block counted once (so cycles end). It is what the table
// charges against its reply budgets (semantics.TableConfig.MaxReplyBytes).
//
// The walk is bounded: it looks at sizeWalkSteps values at most. The rest
// of a longer slice, array or map is taken to be like the part walked; what
// lies deeper is not counted. A slice or array of values without pointers
// (a []byte, a []int, a struct of numbers) costs one step however long it
// is, so the usual replies are measured exactly.
func replySize(reply any, err error) int {
	var z sizer
	return z.boxed(reply) + z.boxed(err)
}

// sizeWalkSteps bounds the values replySize looks at.
const sizeWalkSteps = 1024

// mapEntryOverhead is what a map spends per entry beyond its key and value
// (control bytes and slack), roughly.
const mapEntryOverhead = 8

// sizer is one replySize walk.
type sizer struct {
	steps   int
	nseen   int
	seen    [8]block           // the blocks counted, while there are nseen ≤ 8
	seenMap map[block]struct{} // the blocks counted, once there are more
}

// block is a counted piece of memory: its address and the type it was
// reached as.
type block struct {
	addr uintptr
	typ  reflect.Type
}

// first reports whether the block is met for the first time, and notes it.
func (z *sizer) first(addr uintptr, typ reflect.Type) bool {
	b := block{addr, typ}
	if z.seenMap == nil {
		for _, s := range z.seen[:z.nseen] {
			if s == b {
				return false
			}
		}
		if z.nseen < len(z.seen) {
			z.seen[z.nseen] = b
			z.nseen++
			return true
		}
		z.seenMap = make(map[block]struct{}, 2*len(z.seen))
		for _, s := range z.seen {
			z.seenMap[s] = struct{}{}
		}
	}
	if _, ok := z.seenMap[b]; ok {
		return false
	}
	z.seenMap[b] = struct{}{}
	return true
}

// boxed is the size of a value held in an interface: the value itself
// (unless it is pointer-shaped, and so held in the interface word) and what
// it reaches.
func (z *sizer) boxed(x any) int {
	if x == nil {
		return 0
	}
	return z.boxedValue(reflect.ValueOf(x))
}

func (z *sizer) boxedValue(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return z.extras(v)
	}
	return int(v.Type().Size()) + z.extras(v)
}

// extras is the size of what v reaches, beyond v's own bytes.
func (z *sizer) extras(v reflect.Value) int {
	if z.steps >= sizeWalkSteps {
		return 0
	}
	z.steps++
	switch v.Kind() {
	case reflect.String:
		return v.Len()
	case reflect.Pointer:
		if v.IsNil() || !z.first(v.Pointer(), v.Type()) {
			return 0
		}
		e := v.Elem()
		return int(e.Type().Size()) + z.extras(e)
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		return z.boxedValue(v.Elem())
	case reflect.Slice:
		if v.IsNil() || !z.first(v.Pointer(), v.Type()) {
			return 0
		}
		n := v.Cap() * int(v.Type().Elem().Size())
		if flat(v.Type().Elem()) {
			return n
		}
		return n + z.elems(v)
	case reflect.Array:
		if flat(v.Type().Elem()) {
			return 0
		}
		return z.elems(v)
	case reflect.Struct:
		if flat(v.Type()) {
			return 0
		}
		n := 0
		for i := range v.NumField() {
			n += z.extras(v.Field(i))
		}
		return n
	case reflect.Map:
		if v.IsNil() || !z.first(v.Pointer(), v.Type()) {
			return 0
		}
		t := v.Type()
		n := v.Len() * (int(t.Key().Size()+t.Elem().Size()) + mapEntryOverhead)
		if flat(t.Key()) && flat(t.Elem()) {
			return n
		}
		deep, walked := 0, 0
		for it := v.MapRange(); z.steps < sizeWalkSteps && it.Next(); walked++ {
			deep += z.extras(it.Key()) + z.extras(it.Value())
		}
		return n + extrapolate(deep, walked, v.Len())
	}
	return 0
}

// elems is the size of what the elements of v (a slice or an array)
// reach, extrapolated from those walked.
func (z *sizer) elems(v reflect.Value) int {
	deep, walked := 0, 0
	for walked < v.Len() && z.steps < sizeWalkSteps {
		deep += z.extras(v.Index(walked))
		walked++
	}
	return extrapolate(deep, walked, v.Len())
}

// extrapolate takes deep bytes, found under the first walked of n
// elements, as the sample of all n.
func extrapolate(deep, walked, n int) int {
	if walked == 0 || walked >= n {
		return deep
	}
	return int(min(float64(deep)/float64(walked)*float64(n), math.MaxInt32))
}

// flatTypes caches flat's answer for arrays and structs.
var flatTypes sync.Map // reflect.Type → bool

// flat reports whether a value of type t reaches nothing that replySize
// counts (no strings, pointers, slices, maps or interfaces inside), so
// that its size is its type's.
func flat(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return false
	case reflect.Array, reflect.Struct:
	default:
		return true // numbers, and what the walk does not enter (channels, functions)
	}
	if f, ok := flatTypes.Load(t); ok {
		return f.(bool)
	}
	f := true
	if t.Kind() == reflect.Array {
		f = t.Len() == 0 || flat(t.Elem())
	} else {
		for i := range t.NumField() {
			if !flat(t.Field(i).Type) {
				f = false
				break
			}
		}
	}
	flatTypes.Store(t, f)
	return f
}
